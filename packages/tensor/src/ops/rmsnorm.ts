// Fused RMSNorm over the last axis: y = x·rsqrt(mean(x²) + eps)·(offset + w), offset 0 for LLaMA
// and Mistral, 1 for Gemma's (1 + w). Saves 1/rms per row; backward is one row pass + one column pass.
import { fmtShape, ShapeError } from "../errors.js";
import { record } from "../graph.js";
import { emptyTensor, sameBackend, type Tensor } from "../tensor.js";
import { copyToContiguous } from "./copy.js";
import {
  cpuData,
  cpuValues,
  groups,
  inputDecl,
  isGpu,
  LINEAR_WG,
  MAIN,
  outputDecl,
  paramsDecl,
  requireFloat,
  rowsOf,
  rowLanes,
} from "./kernel.js";

export interface RmsNormOptions {
  eps?: number;
  /** Added to the weight: 0 (LLaMA, Mistral) or 1 (Gemma's `1 + w`). */
  offset?: number;
}

function forwardRaw(x: Tensor, w: Tensor, eps: number, off: number): { y: Tensor; rstd: Tensor } {
  const { rows, cols } = rowsOf(x);
  const y = emptyTensor(x.backend, x.shape);
  const rstd = emptyTensor(x.backend, [rows]);
  const b = x.backend;
  if (rows === 0) return { y, rstd };
  if (isGpu(b)) {
    const lanes = rowLanes(b, cols);
    const wg = lanes.wg;
    const params = { u: { rows, cols, xo: x.offset, wo: w.offset }, f: { eps, off } };
    b.dispatch({
      key: `rmsnorm:${x.dtype}:${w.dtype}:${lanes.key}`,
      params,
      inputs: [x.storage, w.storage],
      outputs: [y.storage, rstd.storage],
      grid: rows,
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", x.dtype)}${inputDecl(2, "w", w.dtype)}${outputDecl(3, "y")}
${outputDecl(4, "rs")}${lanes.lib}
${MAIN(wg)} {
  let r = ${LINEAR_WG};
  if (r >= p.rows) { return; }
  let base = p.xo + r * p.cols;
  var acc = 0.0;
  for (var j = lid.x; j < p.cols; j += ${wg}u) { let v = load_x(base + j); acc += v * v; }
  let ss = wg_sum(acc, lid.x);
  let inv = inverseSqrt(ss / f32(p.cols) + p.eps);
  for (var j = lid.x; j < p.cols; j += ${wg}u) { y[r * p.cols + j] = load_x(base + j) * inv * (p.off + load_w(p.wo + j)); }
  if (lid.x == 0u) { rs[r] = inv; }
}`,
    });
  } else {
    const xv = cpuValues(x);
    const wv = cpuValues(w);
    const yo = cpuData(y);
    const ro = cpuData(rstd);
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let j = 0; j < cols; j++) ss += xv[r * cols + j] ** 2;
      const inv = 1 / Math.sqrt(ss / cols + eps);
      ro[r] = inv;
      for (let j = 0; j < cols; j++) yo[r * cols + j] = xv[r * cols + j] * inv * (off + wv[j]);
    }
  }
  return { y, rstd };
}

/** dx = r·(dxh − xh·mean(dxh·xh)) with xh = x·r, dxh = g·(off + w); dw = Σ_rows g·xh. */
function backwardRaw(x: Tensor, w: Tensor, rstd: Tensor, g: Tensor, off: number, needW: boolean): { dx: Tensor; dw: Tensor | null } {
  const { rows, cols } = rowsOf(x);
  const gc = g.isContiguous ? g : copyToContiguous(g);
  const dx = emptyTensor(x.backend, x.shape);
  const dw = needW ? emptyTensor(x.backend, w.shape) : null;
  const b = x.backend;
  if (isGpu(b)) {
    const lanes = rowLanes(b, cols);
    const wg = lanes.wg;
    const params = { u: { rows, cols, xo: x.offset, go: gc.offset, wo: w.offset }, f: { off } };
    b.dispatch({
      key: `rmsnorm_dx:${x.dtype}:${w.dtype}:${lanes.key}`,
      params,
      inputs: [x.storage, w.storage, rstd.storage, gc.storage],
      outputs: [dx.storage],
      grid: rows,
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", x.dtype)}${inputDecl(2, "w", w.dtype)}${inputDecl(3, "rs", "f32")}
${inputDecl(4, "g", "f32")}${outputDecl(5, "dx")}${lanes.lib}
${MAIN(wg)} {
  let r = ${LINEAR_WG};
  if (r >= p.rows) { return; }
  let inv = rs[r];
  var acc = 0.0;
  for (var j = lid.x; j < p.cols; j += ${wg}u) {
    acc += g[p.go + r * p.cols + j] * (p.off + load_w(p.wo + j)) * load_x(p.xo + r * p.cols + j) * inv;
  }
  let m = wg_sum(acc, lid.x) / f32(p.cols);
  for (var j = lid.x; j < p.cols; j += ${wg}u) {
    let xh = load_x(p.xo + r * p.cols + j) * inv;
    dx[r * p.cols + j] = inv * (g[p.go + r * p.cols + j] * (p.off + load_w(p.wo + j)) - xh * m);
  }
}`,
    });
    if (dw) {
      const pw = { u: { rows, cols, xo: x.offset, go: gc.offset } };
      b.dispatch({
        key: `rmsnorm_dw:${x.dtype}`,
        params: pw,
        inputs: [x.storage, rstd.storage, gc.storage],
        outputs: [dw.storage],
        grid: groups(cols, 64),
        wgsl: () => `${paramsDecl(pw)}${inputDecl(1, "x", x.dtype)}${inputDecl(2, "rs", "f32")}${inputDecl(3, "g", "f32")}
${outputDecl(4, "dw")}
${MAIN(64)} {
  let j = ${LINEAR_WG} * 64u + lid.x;
  if (j >= p.cols) { return; }
  var acc = 0.0;
  for (var r = 0u; r < p.rows; r++) { acc += g[p.go + r * p.cols + j] * load_x(p.xo + r * p.cols + j) * rs[r]; }
  dw[j] = acc;
}`,
      });
    }
  } else {
    const xv = cpuValues(x);
    const wv = cpuValues(w);
    const rv = cpuData(rstd);
    const gv = cpuValues(gc);
    const dxo = cpuData(dx);
    const dwo = dw ? cpuData(dw) : null;
    for (let r = 0; r < rows; r++) {
      let m = 0;
      for (let j = 0; j < cols; j++) m += gv[r * cols + j] * (off + wv[j]) * xv[r * cols + j] * rv[r];
      m /= cols;
      for (let j = 0; j < cols; j++) {
        const i = r * cols + j;
        const xh = xv[i] * rv[r];
        dxo[i] = rv[r] * (gv[i] * (off + wv[j]) - xh * m);
        if (dwo) dwo[j] += gv[i] * xh;
      }
    }
  }
  if (gc !== g) gc.dispose();
  return { dx, dw };
}

/** RMSNorm over the last axis with weight `w` [H] (f32, or frozen f16/bf16). */
export function rmsNorm(x: Tensor, w: Tensor, opts: RmsNormOptions = {}): Tensor {
  sameBackend("rmsNorm", x, w);
  requireFloat("rmsNorm", x, w);
  const H = x.shape[x.rank - 1];
  if (w.rank !== 1 || w.shape[0] !== H)
    throw new ShapeError(`rmsNorm: weight ${fmtShape(w.shape)} does not match the last axis of ${fmtShape(x.shape)}`);
  const eps = opts.eps ?? 1e-6;
  const off = opts.offset ?? 0;
  const xc = x.isContiguous ? x.viewAs(x.shape) : copyToContiguous(x);
  const wc = w.isContiguous ? w.viewAs(w.shape) : copyToContiguous(w);
  const { y, rstd } = forwardRaw(xc, wc, eps, off);
  return record(
    y,
    "rmsNorm",
    [x, w],
    (g, needs, [xs, ws, rs]) => {
      const { dx, dw } = backwardRaw(xs, ws, rs, g, off, needs[1]);
      if (needs[0]) return [dx, dw];
      dx.dispose();
      return [null, dw];
    },
    [xc, wc, rstd],
  );
}
