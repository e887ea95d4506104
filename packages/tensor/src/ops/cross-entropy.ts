// Cross-entropy from logits with integer labels and ignore_index (-100), like torch's
// F.cross_entropy: forward keeps only logsumexp per row; backward writes softmax − onehot directly.
import { bytesPerElement } from "../dtype.js";
import { ArgumentError, DTypeError, fmtShape, IndexError, ShapeError } from "../errors.js";
import { record } from "../graph.js";
import { emptyTensor, sameBackend, type Tensor } from "../tensor.js";
import { copyToContiguous, fill } from "./copy.js";
import { div } from "./elementwise.js";
import { mapElementwise } from "./elementwise-kernel.js";
import {
  bindSpan,
  cpuData,
  cpuValues,
  inputDecl,
  isGpu,
  LINEAR_WG,
  MAIN,
  outputDecl,
  paramsDecl,
  reportWgsl,
  requireFloat,
  rowMaxSumExp,
  rowMaxSumExpWgsl,
  rowRuns,
  reshaped,
  rowLanes,
} from "./kernel.js";
import { concat, slice } from "./movement.js";
import { reduceRaw, sum } from "./reduce.js";

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

/** A contiguous [shape] view of `t` (a copy when `t` is strided). */
const flat = (t: Tensor, shape: number[]): Tensor => (t.isContiguous ? t.viewAs(shape) : reshaped(copyToContiguous(t), shape));

// x [N, V] contiguous, labels [N] i32 contiguous -> per-row loss, logsumexp and 1/0 "counted".
function forwardRaw(x: Tensor, labels: Tensor, ignore: number): RowsOut {
  const [N, V] = x.shape;
  const b = x.backend;
  const loss = emptyTensor(b, [N]);
  const lse = emptyTensor(b, [N]);
  const valid = emptyTensor(b, [N]);
  if (N === 0) return { loss, lse, valid };
  if (isGpu(b)) {
    const lanes = rowLanes(b, V);
    const wg = lanes.wg;
    const { code, err } = b.validation(
      `crossEntropy: a label is out of range [0, ${V}) and not ignoreIndex ${ignore} (logits ${fmtShape(x.shape)})`,
    );
    for (const [r0, r1] of rowRuns(b, N, V * bytesPerElement(x.dtype), [x.storage])) {
      const xs = bindSpan(b, x.storage, x.offset + r0 * V, (r1 - r0) * V);
      const params = { u: { N: r1 - r0, V, r0, xo: xs.base, lo: labels.offset + r0, code }, i: { ign: ignore } };
      b.dispatch({
        key: `xent:${x.dtype}:${lanes.key}`,
        params,
        inputs: [xs.binding, labels.storage],
        outputs: [loss.storage, lse.storage, valid.storage, err],
        grid: r1 - r0,
        wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", x.dtype)}${inputDecl(2, "lab", "i32")}
${outputDecl(3, "loss")}${outputDecl(4, "lse")}${outputDecl(5, "valid")}${reportWgsl(6)}${lanes.lib}
${MAIN(wg)} {
  let r = ${LINEAR_WG};
  if (r >= p.N) { return; }
  let base = p.xo + r * p.V;
  ${rowMaxSumExpWgsl({ wg, cols: "p.V", value: (j) => `load_x(base + ${j})` })}
  if (lid.x == 0u) {
    let o = p.r0 + r;
    let l = row_max + log(row_sum);
    lse[o] = l;
    let y = lab[p.lo + r];
    if (y == p.ign) { loss[o] = 0.0; valid[o] = 0.0; }
    else if (y < 0 || u32(y) >= p.V) { report(p.code, y); loss[o] = 0.0; valid[o] = 0.0; }
    else { loss[o] = l - load_x(base + u32(y)); valid[o] = 1.0; }
  }
}`,
      });
    }
    return { loss, lse, valid };
  }
  const xv = cpuValues(x);
  const lv = cpuValues(labels);
  const [lo, so, vo] = [cpuData(loss), cpuData(lse), cpuData(valid)];
  for (let r = 0; r < N; r++) {
    const { max, sum } = rowMaxSumExp(V, (j) => xv[r * V + j]);
    so[r] = max + Math.log(sum);
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

/** dx[r, j] = g[r]·(exp(x[r, j] − lse[r]) − [j = label[r]]) for counted rows, 0 for ignored ones (g: N elements, any shape). */
function backwardRaw(x: Tensor, labels: Tensor, lse: Tensor, valid: Tensor, gIn: Tensor): Tensor {
  const [N, V] = x.shape;
  const g = gIn.isContiguous ? gIn : copyToContiguous(gIn);
  const dx = emptyTensor(x.backend, x.shape);
  const b = x.backend;
  if (isGpu(b)) {
    const lanes = rowLanes(b, V);
    const wg = lanes.wg;
    for (const [r0, r1] of rowRuns(b, N, V * 4, [x.storage, dx.storage])) {
      const n = (r1 - r0) * V;
      const [xs, ds] = [bindSpan(b, x.storage, x.offset + r0 * V, n), bindSpan(b, dx.storage, r0 * V, n)];
      const params = { u: { N: r1 - r0, V, r0, xo: xs.base, dxo: ds.base, lo: labels.offset + r0, go: g.offset + r0 } };
      b.dispatch({
        key: `xent_grad:${x.dtype}:${lanes.key}`,
        params,
        inputs: [xs.binding, labels.storage, lse.storage, valid.storage, g.storage],
        outputs: [ds.binding],
        grid: r1 - r0,
        wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", x.dtype)}${inputDecl(2, "lab", "i32")}${inputDecl(3, "lse", "f32")}
${inputDecl(4, "valid", "f32")}${inputDecl(5, "g", "f32")}${outputDecl(6, "dx")}
${MAIN(wg)} {
  let r = ${LINEAR_WG};
  if (r >= p.N) { return; }
  let ok = valid[p.r0 + r] != 0.0;
  let gr = g[p.go + r];
  let l = lse[p.r0 + r];
  let y = lab[p.lo + r];
  for (var j = lid.x; j < p.V; j += ${wg}u) {
    let pj = exp(load_x(p.xo + r * p.V + j) - l) - select(0.0, 1.0, i32(j) == y);
    dx[p.dxo + r * p.V + j] = select(0.0, gr * pj, ok);
  }
}`,
      });
    }
  } else {
    const xv = cpuValues(x);
    const lv = cpuValues(labels);
    const [sv, vv, gv] = [cpuData(lse), cpuData(valid), cpuValues(g)];
    const o = cpuData(dx);
    for (let r = 0; r < N; r++) {
      if (!vv[r]) continue;
      for (let j = 0; j < V; j++) o[r * V + j] = gv[r] * (Math.exp(xv[r * V + j] - sv[r]) - (j === lv[r] ? 1 : 0));
    }
  }
  if (g !== gIn) g.dispose();
  return dx;
}

/**
 * Cross-entropy of `logits` [..., V] against i32 `labels` [...]. Positions whose label is
 * `ignoreIndex` do not count. The [N, V] probabilities are never stored: backward recomputes them.
 * Logits larger than one storage binding are processed in runs of rows.
 */
export function crossEntropy(logits: Tensor, labels: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  sameBackend("crossEntropy", logits, labels);
  requireFloat("crossEntropy", logits);
  if (labels.dtype !== "i32") throw new DTypeError(`crossEntropy: labels must be i32, got ${labels.dtype} ${fmtShape(labels.shape)}`);
  const V = logits.shape[logits.rank - 1];
  if (logits.rank < 1 || labels.size * V !== logits.size || labels.shape.some((d, i) => d !== logits.shape[i]))
    throw new ShapeError(
      `crossEntropy: logits ${fmtShape(logits.shape)} need labels of shape ${fmtShape(logits.shape.slice(0, -1))}, ` +
        `got ${fmtShape(labels.shape)}`,
    );
  const reduction = opts.reduction ?? "mean";
  if (!["mean", "sum", "none"].includes(reduction))
    throw new ArgumentError(`crossEntropy: reduction must be "mean", "sum" or "none", got ${reduction}`);
  const ignore = opts.ignoreIndex ?? -100;
  const x = flat(logits, [labels.size, V]);
  const lab = flat(labels, [labels.size]);
  const { loss, lse, valid } = forwardRaw(x, lab, ignore);
  const count = reduction === "mean" ? reduceRaw("sum", valid, [0], false) : null;
  const rows = record(
    loss.viewAs(labels.shape),
    "crossEntropy",
    [logits],
    (g, _needs, [xs, ls, lses, vs]) => [reshaped(backwardRaw(xs, ls, lses, vs, g), logits.shape)],
    [x, lab, lse, valid],
  );
  loss.dispose();
  if (reduction === "none") return rows;
  const total = sum(rows);
  rows.dispose();
  if (!count) return total;
  const out = div(total, count);
  for (const t of [total, count]) t.dispose();
  return out;
}

/**
 * The causal-LM shift as Hugging Face does it: logit t predicts label t + 1. Returns `targets`
 * [B, T] i32 (labels moved left by one, `ignoreIndex` at the last position) and `mask` [B, T] f32
 * (1 where the target counts). The loss and every regularizer count exactly these positions.
 */
export function causalTargets(labels: Tensor, ignoreIndex = -100): { targets: Tensor; mask: Tensor } {
  labels.assertLive("causalTargets");
  if (labels.dtype !== "i32" || labels.rank !== 2)
    throw new ShapeError(`causalTargets: labels must be i32 [B, T], got ${labels.dtype} ${fmtShape(labels.shape)}`);
  const [B, T] = labels.shape;
  const rest = slice(labels, [null, [Math.min(1, T), T]]);
  const pad = fill(labels.backend, [B, Math.min(1, T)], ignoreIndex, "i32");
  const targets = concat([rest, pad], 1);
  for (const t of [rest, pad]) t.dispose();
  const mask = mapElementwise(
    "target_mask",
    [targets, ignoreIndex],
    ([t, i]) => `select(1.0, 0.0, ${t} == ${i})`,
    (t, i) => +(t !== i),
  );
  return { targets, mask };
}
