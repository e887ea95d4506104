// Cross-entropy from logits with integer labels and ignore_index (-100), like torch's
// F.cross_entropy: forward keeps only logsumexp per row; backward writes softmax − onehot directly.
import { record } from "../autograd.js";
import { paramsDecl, reportWgsl, LINEAR_WG } from "../backend/webgpu.js";
import { ArgumentError, DTypeError, IndexError, ShapeError, fmtShape } from "../errors.js";
import { sameBackend, type Tensor } from "../tensor.js";
import { div } from "./elementwise.js";
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
  rowWorkgroup,
  wgReduceLib,
} from "./kernel.js";
import { contiguous, reshape } from "./movement.js";
import { sum } from "./reduce.js";

export interface CrossEntropyOptions {
  /** Labels equal to this are skipped (default -100, as in torch and HF). */
  ignoreIndex?: number;
  /** "mean" over counted labels (default; NaN when none counts, like torch), "sum", or "none" (per row). */
  reduction?: "mean" | "sum" | "none";
}

interface RowsOut {
  loss: Tensor;
  lse: Tensor;
  valid: Tensor;
}

function forwardRaw(x: Tensor, labels: Tensor, ignore: number): RowsOut {
  const V = x.shape[1];
  const N = x.shape[0];
  const b = x.backend;
  const loss = emptyTensor(b, [N]);
  const lse = emptyTensor(b, [N]);
  const valid = emptyTensor(b, [N]);
  if (N === 0) return { loss, lse, valid };
  if (isGpu(b)) {
    const wg = rowWorkgroup(V);
    const { code, err } = b.validation(
      `crossEntropy: a label is out of range [0, ${V}) and not ignoreIndex ${ignore} (logits ${fmtShape(x.shape)})`,
    );
    const params = { u: { N, V, xo: x.offset, lo: labels.offset, code }, i: { ign: ignore } };
    b.dispatch({
      key: `xent:${x.dtype}:${wg}`,
      params,
      inputs: [gpuOf(x), gpuOf(labels)],
      outputs: [gpuOf(loss), gpuOf(lse), gpuOf(valid), err],
      grid: N,
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", x.dtype)}${inputDecl(2, "lab", "i32")}${outputDecl(3, "loss")}
${outputDecl(4, "lse")}${outputDecl(5, "valid")}${reportWgsl(6)}${wgReduceLib(wg)}
${MAIN(wg)} {
  let r = ${LINEAR_WG};
  if (r >= p.N) { return; }
  let base = p.xo + r * p.V;
  var m = -3.4028234663852886e38;
  for (var j = lid.x; j < p.V; j += ${wg}u) { m = max(m, load_x(base + j)); }
  let mx = wg_max(m, lid.x);
  var acc = 0.0;
  for (var j = lid.x; j < p.V; j += ${wg}u) { acc += exp(load_x(base + j) - mx); }
  let s = wg_sum(acc, lid.x);
  if (lid.x == 0u) {
    let l = mx + log(s);
    lse[r] = l;
    let y = lab[p.lo + r];
    if (y == p.ign) { loss[r] = 0.0; valid[r] = 0.0; }
    else if (y < 0 || u32(y) >= p.V) { report(p.code, y); loss[r] = 0.0; valid[r] = 0.0; }
    else { loss[r] = l - load_x(base + u32(y)); valid[r] = 1.0; }
  }
}`,
    });
    return { loss, lse, valid };
  }
  const xv = cpuValues(x);
  const lv = cpuValues(labels);
  const [lo, so, vo] = [cpuData(loss), cpuData(lse), cpuData(valid)];
  for (let r = 0; r < N; r++) {
    let mx = -Infinity;
    for (let j = 0; j < V; j++) mx = Math.max(mx, xv[r * V + j]);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(xv[r * V + j] - mx);
    so[r] = mx + Math.log(s);
    const y = lv[r];
    if (y === ignore) continue;
    if (y < 0 || y >= V)
      throw new IndexError(
        `crossEntropy: label ${y} is out of range [0, ${V}) and not ignoreIndex ${ignore} (logits ${fmtShape(x.shape)})`,
      );
    lo[r] = so[r] - xv[r * V + y];
    vo[r] = 1;
  }
  return { loss, lse, valid };
}

/** dx[r, j] = g[r]·(exp(x[r, j] − lse[r]) − [j = label[r]]) for counted rows, 0 for ignored ones. */
function backwardRaw(x: Tensor, labels: Tensor, lse: Tensor, valid: Tensor, g: Tensor): Tensor {
  const [N, V] = x.shape;
  const gc = contiguous(g);
  const dx = emptyTensor(x.backend, x.shape);
  const b = x.backend;
  if (isGpu(b)) {
    const wg = rowWorkgroup(V);
    const params = { u: { N, V, xo: x.offset, lo: labels.offset, go: gc.offset } };
    b.dispatch({
      key: `xent_grad:${x.dtype}:${wg}`,
      params,
      inputs: [gpuOf(x), gpuOf(labels), gpuOf(lse), gpuOf(valid), gpuOf(gc)],
      outputs: [gpuOf(dx)],
      grid: N,
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", x.dtype)}${inputDecl(2, "lab", "i32")}${inputDecl(3, "lse", "f32")}
${inputDecl(4, "valid", "f32")}${inputDecl(5, "g", "f32")}${outputDecl(6, "dx")}
${MAIN(wg)} {
  let r = ${LINEAR_WG};
  if (r >= p.N) { return; }
  let ok = valid[r] != 0.0;
  let gr = g[p.go + r];
  let l = lse[r];
  let y = lab[p.lo + r];
  for (var j = lid.x; j < p.V; j += ${wg}u) {
    let pj = exp(load_x(p.xo + r * p.V + j) - l) - select(0.0, 1.0, i32(j) == y);
    dx[r * p.V + j] = select(0.0, gr * pj, ok);
  }
}`,
    });
  } else {
    const xv = cpuValues(x);
    const lv = cpuValues(labels);
    const [sv, vv, gv] = [cpuData(lse), cpuData(valid), cpuValues(gc)];
    const o = cpuData(dx);
    for (let r = 0; r < N; r++) {
      if (!vv[r]) continue;
      for (let j = 0; j < V; j++) o[r * V + j] = gv[r] * (Math.exp(xv[r * V + j] - sv[r]) - (j === lv[r] ? 1 : 0));
    }
  }
  gc.dispose();
  return dx;
}

/**
 * Cross-entropy of `logits` [..., V] against i32 `labels` [...]. Positions whose label is
 * `ignoreIndex` do not count. The [N, V] probabilities are never stored: backward recomputes them.
 */
export function crossEntropy(logits: Tensor, labels: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  sameBackend("crossEntropy", logits, labels);
  requireFloat("crossEntropy", logits);
  if (labels.dtype !== "i32") throw new DTypeError(`crossEntropy: labels must be i32, got ${labels.dtype} ${fmtShape(labels.shape)}`);
  const V = logits.shape[logits.rank - 1];
  if (logits.rank < 1 || labels.size * V !== logits.size || labels.shape.some((d, i) => d !== logits.shape[i]))
    throw new ShapeError(
      `crossEntropy: logits ${fmtShape(logits.shape)} need labels of shape ${fmtShape(logits.shape.slice(0, -1))}, got ` +
        `${fmtShape(labels.shape)}`,
    );
  const reduction = opts.reduction ?? "mean";
  if (!["mean", "sum", "none"].includes(reduction))
    throw new ArgumentError(`crossEntropy: reduction must be "mean", "sum" or "none", got ${reduction}`);
  const ignore = opts.ignoreIndex ?? -100;
  const x = reshape(logits, [labels.size, V]);
  const lab = contiguous(labels);
  const { loss: rowsRaw, lse, valid } = forwardRaw(x, lab, ignore);
  const rows = record(rowsRaw, "crossEntropy", [x], (g) => [backwardRaw(x, lab, lse, valid, g)]);
  let out: Tensor;
  let count: Tensor | null = null;
  if (reduction === "none") out = reshape(rows, labels.shape);
  else {
    const total = sum(rows);
    if (reduction === "sum") out = total;
    else {
      count = sum(valid);
      out = div(total, count);
      total.dispose();
    }
  }
  rows.dispose();
  // Without a graph nothing needs the saved tensors; with one, backward reads them (tidy frees them).
  if (!out.requiresGrad) for (const t of [x, lab, lse, valid, count]) t?.dispose();
  return out;
}
