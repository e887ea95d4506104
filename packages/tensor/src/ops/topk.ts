// Top-k values (descending) and their indices along the last axis, ties resolved to the lower
// index; the gradient scatters back to the chosen positions. One thread per row, k ≤ 64.
import { record } from "../graph.js";
import { ArgumentError } from "../errors.js";
import { emptyTensor, type Tensor } from "../tensor.js";
import { copyToContiguous, fill } from "./copy.js";
import { cpuData, cpuValues, groups, inputDecl, isGpu, LINEAR_WG, MAIN, outputDecl, paramsDecl, requireFloat, rowsOf } from "./kernel.js";

const WG = 64;
export const MAX_TOPK = 64;

function topkRaw(x: Tensor, k: number): { values: Tensor; indices: Tensor } {
  const { rows, cols } = rowsOf(x);
  const shape = [...x.shape.slice(0, -1), k];
  const values = emptyTensor(x.backend, shape);
  const indices = emptyTensor(x.backend, shape, "i32");
  const b = x.backend;
  if (rows === 0 || k === 0) return { values, indices };
  if (isGpu(b)) {
    const params = { u: { rows, cols, xo: x.offset } };
    b.dispatch({
      key: `topk:${x.dtype}:${k}`,
      params,
      inputs: [x.storage],
      outputs: [values.storage, indices.storage],
      grid: groups(rows, WG),
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", x.dtype)}${outputDecl(2, "vals")}${outputDecl(3, "idxs", "i32")}
${MAIN(WG)} {
  let r = ${LINEAR_WG} * ${WG}u + lid.x;
  if (r >= p.rows) { return; }
  var tv: array<f32, ${k}>;
  var ti: array<i32, ${k}>;
  for (var q = 0u; q < ${k}u; q++) { tv[q] = -3.4028234663852886e38; ti[q] = -1; }
  let base = p.xo + r * p.cols;
  for (var j = 0u; j < p.cols; j++) {
    let v = load_x(base + j);
    if (v > tv[${k - 1}u] || ti[${k - 1}u] < 0) {
      var q = ${k - 1}u;
      while (q > 0u && (tv[q - 1u] < v || ti[q - 1u] < 0)) { tv[q] = tv[q - 1u]; ti[q] = ti[q - 1u]; q--; }
      tv[q] = v;
      ti[q] = i32(j);
    }
  }
  for (var q = 0u; q < ${k}u; q++) { vals[r * ${k}u + q] = tv[q]; idxs[r * ${k}u + q] = ti[q]; }
}`,
    });
    return { values, indices };
  }
  const xv = cpuValues(x);
  const vo = cpuData(values);
  const io = cpuData(indices);
  for (let r = 0; r < rows; r++) {
    const order = Array.from({ length: cols }, (_, j) => j).sort((a, c) => xv[r * cols + c] - xv[r * cols + a] || a - c);
    for (let q = 0; q < k; q++) {
      vo[r * k + q] = xv[r * cols + order[q]];
      io[r * k + q] = order[q];
    }
  }
  return { values, indices };
}

function scatterRows(g: Tensor, indices: Tensor, shape: readonly number[]): Tensor {
  const cols = shape[shape.length - 1];
  const k = indices.shape[indices.rank - 1];
  const dx = fill(g.backend, shape, 0);
  const n = g.size;
  const b = g.backend;
  if (n === 0) return dx;
  const gc = g.isContiguous ? g : copyToContiguous(g);
  if (isGpu(b)) {
    const params = { u: { n, k, cols, go: gc.offset } };
    b.dispatch({
      key: "topk_grad",
      params,
      inputs: [gc.storage, indices.storage],
      outputs: [dx.storage],
      grid: groups(n, WG),
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "g", "f32")}${inputDecl(2, "idx", "i32")}${outputDecl(3, "dx")}
${MAIN(WG)} {
  let i = ${LINEAR_WG} * ${WG}u + lid.x;
  if (i >= p.n) { return; }
  let r = i / p.k;
  dx[r * p.cols + u32(idx[i])] = g[p.go + i];
}`,
    });
  } else {
    const gv = cpuValues(gc);
    const iv = cpuData(indices);
    const o = cpuData(dx);
    for (let i = 0; i < n; i++) o[Math.floor(i / k) * cols + iv[i]] = gv[i];
  }
  if (gc !== g) gc.dispose();
  return dx;
}

/** The k largest values along the last axis (descending) and their i32 indices. */
export function topk(x: Tensor, k: number): { values: Tensor; indices: Tensor } {
  x.assertLive("topk");
  requireFloat("topk", x);
  const cols = x.shape[x.rank - 1];
  if (!Number.isInteger(k) || k < 1 || k > Math.min(cols, MAX_TOPK))
    throw new ArgumentError(`topk: k must be an integer in [1, ${Math.min(cols, MAX_TOPK)}] for last axis ${cols}, got ${k}`);
  const xc = x.isContiguous ? x : copyToContiguous(x);
  const { values, indices } = topkRaw(xc, k);
  if (xc !== x) xc.dispose();
  // The caller gets `indices`; the graph holds its own view for the backward.
  const out = record(values, "topk", [x], (g, _needs, [is]) => [scatterRows(g, is, x.shape)], [indices.viewAs(indices.shape)]);
  return { values: out, indices };
}

/** Index of the largest value along the last axis (i32, that axis removed), ties to the lower index. */
export function argmax(x: Tensor): Tensor {
  x.assertLive("argmax");
  const xc = x.isContiguous ? x : copyToContiguous(x);
  const { values, indices } = topkRaw(xc, 1);
  if (xc !== x) xc.dispose();
  values.dispose();
  const out = indices.viewAs(x.shape.slice(0, -1));
  indices.dispose();
  return out;
}
