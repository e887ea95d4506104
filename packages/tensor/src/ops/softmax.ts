// Softmax and log-softmax over the last axis, one workgroup per row, max-subtracted so logits of
// ±1e4 stay finite; the backward kernels use the saved output (no second exp pass over the input).
import { record } from "../autograd.js";
import { paramsDecl, LINEAR_WG } from "../backend/webgpu.js";
import { normalizeAxis } from "../shape.js";
import type { Tensor } from "../tensor.js";
import {
  cpuData,
  cpuValues,
  emptyTensor,
  gpuOf,
  inputDecl,
  isGpu,
  MAIN,
  outputDecl,
  requireFloat,
  rowsOf,
  rowWorkgroup,
  wgReduceLib,
} from "./kernel.js";
import { contiguous, transpose } from "./movement.js";

type Kind = "softmax" | "logSoftmax";

function forwardRaw(kind: Kind, x: Tensor): Tensor {
  const { rows, cols } = rowsOf(x);
  const out = emptyTensor(x.backend, x.shape);
  if (out.size === 0) return out;
  const b = x.backend;
  if (isGpu(b)) {
    const wg = rowWorkgroup(cols);
    const params = { u: { cols, rows, xo: x.offset } };
    const write = kind === "softmax" ? "exp(v - mx) / s" : "v - mx - log(s)";
    b.dispatch({
      key: `${kind}:${x.dtype}:${wg}`,
      params,
      inputs: [gpuOf(x)],
      outputs: [gpuOf(out)],
      grid: rows,
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", x.dtype)}${outputDecl(2, "y")}${wgReduceLib(wg)}
${MAIN(wg)} {
  let r = ${LINEAR_WG};
  if (r >= p.rows) { return; }
  let base = p.xo + r * p.cols;
  var m = -3.4028234663852886e38;
  for (var j = lid.x; j < p.cols; j += ${wg}u) { m = max(m, load_x(base + j)); }
  let mx = wg_max(m, lid.x);
  var acc = 0.0;
  for (var j = lid.x; j < p.cols; j += ${wg}u) { acc += exp(load_x(base + j) - mx); }
  let s = wg_sum(acc, lid.x);
  for (var j = lid.x; j < p.cols; j += ${wg}u) { let v = load_x(base + j); y[r * p.cols + j] = ${write}; }
}`,
    });
    return out;
  }
  const xv = cpuValues(x);
  const o = cpuData(out);
  for (let r = 0; r < rows; r++) {
    let mx = -Infinity;
    for (let j = 0; j < cols; j++) mx = Math.max(mx, xv[r * cols + j]);
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(xv[r * cols + j] - mx);
    for (let j = 0; j < cols; j++) {
      const v = xv[r * cols + j];
      o[r * cols + j] = kind === "softmax" ? Math.exp(v - mx) / s : v - mx - Math.log(s);
    }
  }
  return out;
}

/** softmax: dx = y·(g − Σ g·y); logSoftmax: dx = g − exp(y)·Σ g. */
function backwardRaw(kind: Kind, y: Tensor, g: Tensor): Tensor {
  const { rows, cols } = rowsOf(y);
  const gc = contiguous(g);
  const dx = emptyTensor(y.backend, y.shape);
  const b = y.backend;
  if (isGpu(b)) {
    const wg = rowWorkgroup(cols);
    const params = { u: { cols, rows, go: gc.offset } };
    const [red, write] =
      kind === "softmax" ? ["g[p.go + i] * y[i]", "y[i] * (g[p.go + i] - s)"] : ["g[p.go + i]", "g[p.go + i] - exp(y[i]) * s"];
    b.dispatch({
      key: `${kind}_grad:${wg}`,
      params,
      inputs: [gpuOf(y), gpuOf(gc)],
      outputs: [gpuOf(dx)],
      grid: rows,
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "y", "f32")}${inputDecl(2, "g", "f32")}${outputDecl(3, "dx")}${wgReduceLib(wg)}
${MAIN(wg)} {
  let r = ${LINEAR_WG};
  if (r >= p.rows) { return; }
  var acc = 0.0;
  for (var j = lid.x; j < p.cols; j += ${wg}u) { let i = r * p.cols + j; acc += ${red}; }
  let s = wg_sum(acc, lid.x);
  for (var j = lid.x; j < p.cols; j += ${wg}u) { let i = r * p.cols + j; dx[i] = ${write}; }
}`,
    });
  } else {
    const yv = cpuData(y);
    const gv = cpuValues(gc);
    const o = cpuData(dx);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = 0; j < cols; j++) s += kind === "softmax" ? gv[r * cols + j] * yv[r * cols + j] : gv[r * cols + j];
      for (let j = 0; j < cols; j++) {
        const i = r * cols + j;
        o[i] = kind === "softmax" ? yv[i] * (gv[i] - s) : gv[i] - Math.exp(yv[i]) * s;
      }
    }
  }
  gc.dispose();
  return dx;
}

function along(kind: Kind, x: Tensor, axis: number): Tensor {
  x.check(kind);
  requireFloat(kind, x);
  const a = normalizeAxis(kind, axis, Math.max(1, x.rank));
  if (a !== x.rank - 1 && x.rank > 0) {
    const t = transpose(x, a, -1);
    const r = along(kind, t, -1);
    const back = transpose(r, a, -1);
    t.dispose();
    r.dispose();
    return back;
  }
  const xc = contiguous(x);
  const y = forwardRaw(kind, xc);
  const out = record(y, kind, [xc], (g) => [backwardRaw(kind, y, g)]);
  xc.dispose();
  return out;
}

/** Softmax along `axis` (default last), stable for large logits. */
export const softmax = (x: Tensor, axis = -1): Tensor => along("softmax", x, axis);

/** Log-softmax along `axis` (default last), stable for large logits. */
export const logSoftmax = (x: Tensor, axis = -1): Tensor => along("logSoftmax", x, axis);
