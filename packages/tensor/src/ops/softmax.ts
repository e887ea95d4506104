// Softmax and log-softmax over the last axis, one workgroup per row, max-subtracted so logits of
// ±1e4 stay finite; the backward kernels use the saved output (no second exp pass over the input).
import { record } from "../graph.js";
import { normalizeAxis } from "../shape.js";
import { emptyTensor, type Tensor } from "../tensor.js";
import { copyToContiguous } from "./copy.js";
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
  requireFloat,
  rowMaxSumExp,
  rowMaxSumExpWgsl,
  rowRuns,
  rowsOf,
  rowLanes,
} from "./kernel.js";
import { transpose } from "./movement.js";

type Kind = "softmax" | "logSoftmax";

// x [rows, cols] (contiguous) -> y [rows, cols]; rows run in windows when x or y exceeds a binding.
function forwardRaw(kind: Kind, x: Tensor): Tensor {
  const { rows, cols } = rowsOf(x);
  const out = emptyTensor(x.backend, x.shape);
  if (out.size === 0) return out;
  const b = x.backend;
  if (isGpu(b)) {
    const lanes = rowLanes(b, cols);
    const wg = lanes.wg;
    const write = kind === "softmax" ? "exp(v - row_max) / row_sum" : "v - row_max - log(row_sum)";
    for (const [r0, r1] of rowRuns(b, rows, cols * 4, [x.storage, out.storage])) {
      const xs = bindSpan(b, x.storage, x.offset + r0 * cols, (r1 - r0) * cols);
      const ys = bindSpan(b, out.storage, r0 * cols, (r1 - r0) * cols);
      const params = { u: { cols, rows: r1 - r0, xo: xs.base, yo: ys.base } };
      b.dispatch({
        key: `${kind}:${x.dtype}:${lanes.key}`,
        params,
        inputs: [xs.binding],
        outputs: [ys.binding],
        grid: r1 - r0,
        wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", x.dtype)}${outputDecl(2, "y")}${lanes.lib}
${MAIN(wg)} {
  let r = ${LINEAR_WG};
  if (r >= p.rows) { return; }
  let base = p.xo + r * p.cols;
  ${rowMaxSumExpWgsl({ wg, cols: "p.cols", value: (j) => `load_x(base + ${j})` })}
  for (var j = lid.x; j < p.cols; j += ${wg}u) { let v = load_x(base + j); y[p.yo + r * p.cols + j] = ${write}; }
}`,
      });
    }
    return out;
  }
  const xv = cpuValues(x);
  const o = cpuData(out);
  for (let r = 0; r < rows; r++) {
    const { max, sum } = rowMaxSumExp(cols, (j) => xv[r * cols + j]);
    for (let j = 0; j < cols; j++) {
      const v = xv[r * cols + j];
      o[r * cols + j] = kind === "softmax" ? Math.exp(v - max) / sum : v - max - Math.log(sum);
    }
  }
  return out;
}

/** softmax: dx = y·(g − Σ g·y); logSoftmax: dx = g − exp(y)·Σ g. y [rows, cols] contiguous, g any layout. */
function backwardRaw(kind: Kind, y: Tensor, gIn: Tensor): Tensor {
  const { rows, cols } = rowsOf(y);
  const g = gIn.isContiguous ? gIn : copyToContiguous(gIn);
  const dx = emptyTensor(y.backend, y.shape);
  const b = y.backend;
  if (isGpu(b)) {
    const lanes = rowLanes(b, cols);
    const wg = lanes.wg;
    const [red, write] =
      kind === "softmax"
        ? ["g[p.go + i] * y[p.yo + i]", "y[p.yo + i] * (g[p.go + i] - s)"]
        : ["g[p.go + i]", "g[p.go + i] - exp(y[p.yo + i]) * s"];
    for (const [r0, r1] of rowRuns(b, rows, cols * 4, [y.storage, g.storage, dx.storage])) {
      const n = (r1 - r0) * cols;
      const [ys, gs, ds] = [
        bindSpan(b, y.storage, r0 * cols, n),
        bindSpan(b, g.storage, g.offset + r0 * cols, n),
        bindSpan(b, dx.storage, r0 * cols, n),
      ];
      const params = { u: { cols, rows: r1 - r0, yo: ys.base, go: gs.base, dxo: ds.base } };
      b.dispatch({
        key: `${kind}_grad:${lanes.key}`,
        params,
        inputs: [ys.binding, gs.binding],
        outputs: [ds.binding],
        grid: r1 - r0,
        wgsl: () => `${paramsDecl(params)}${inputDecl(1, "y", "f32")}${inputDecl(2, "g", "f32")}${outputDecl(3, "dx")}${lanes.lib}
${MAIN(wg)} {
  let r = ${LINEAR_WG};
  if (r >= p.rows) { return; }
  var acc = 0.0;
  for (var j = lid.x; j < p.cols; j += ${wg}u) { let i = r * p.cols + j; acc += ${red}; }
  let s = wg_sum(acc, lid.x);
  for (var j = lid.x; j < p.cols; j += ${wg}u) { let i = r * p.cols + j; dx[p.dxo + i] = ${write}; }
}`,
      });
    }
  } else {
    const yv = cpuData(y);
    const gv = cpuValues(g);
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
  if (g !== gIn) g.dispose();
  return dx;
}

function along(kind: Kind, x: Tensor, axis: number): Tensor {
  x.assertLive(kind);
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
  const xc = x.isContiguous ? x : copyToContiguous(x);
  const y = forwardRaw(kind, xc);
  if (xc !== x) xc.dispose();
  return record(y, kind, [x], (g, _needs, [ys]) => [backwardRaw(kind, ys, g)], [y]);
}

/** Softmax along `axis` (default last), stable for large logits. */
export const softmax = (x: Tensor, axis = -1): Tensor => along("softmax", x, axis);

/** Log-softmax along `axis` (default last), stable for large logits. */
export const logSoftmax = (x: Tensor, axis = -1): Tensor => along("logSoftmax", x, axis);
