// Pieces every linear-algebra routine shares: argument checks with typed errors, f32 working copies
// of a matrix (or its transpose) that kernels may overwrite, identity matrices, and the sign rule.
import { emptyTensor, type Tensor } from "../tensor.js";
import type { Backend } from "../backend/backend.js";
import { ArgumentError, ShapeError, fmtShape } from "../errors.js";
import { cast, mul } from "../ops/elementwise.js";
import { cpuData, groups, inputDecl, isGpu, LINEAR_WG, MAIN, outputDecl, paramsDecl, requireFloat } from "../ops/kernel.js";
import { copyToContiguous } from "../ops/copy.js";
import { transpose } from "../ops/movement.js";

const WG = 64;

/** Checks that `a` is a live, non-empty 2-D float matrix; returns its [rows, cols]. */
export function matrixDims(op: string, a: Tensor): [number, number] {
  a.assertLive(op);
  requireFloat(op, a);
  if (a.rank !== 2) throw new ShapeError(`${op}: expected a 2-D matrix, got shape ${fmtShape(a.shape)}`);
  const [m, n] = a.shape;
  if (m === 0 || n === 0) throw new ShapeError(`${op}: expected a non-empty matrix, got shape ${fmtShape(a.shape)}`);
  return [m, n];
}

/** Checks a count such as k or q: an integer in [1, max], where max is what the matrix allows. */
export function checkRank(op: string, name: string, value: number, max: number, a: Tensor): void {
  if (!Number.isInteger(value) || value < 1 || value > max)
    throw new ArgumentError(`${op}: ${name} must be an integer in [1, ${max}] for a matrix of shape ${fmtShape(a.shape)}, got ${value}`);
}

/** Machine epsilon of the backend's arithmetic: f32 on WebGPU, float64 on the CPU oracle. */
export const machineEps = (b: Backend): number => (isGpu(b) ? 2 ** -23 : 2 ** -52);

/** A fresh contiguous f32 copy of `a` (of aᵀ when `transposed`) that the caller owns and may overwrite. */
export function workingCopy(a: Tensor, transposed: boolean): Tensor {
  const src = transposed ? transpose(a) : a;
  const out = a.dtype === "f32" ? copyToContiguous(src) : cast(src, "f32");
  if (src !== a) src.dispose();
  return out;
}

/** rows×cols matrix with ones on the main diagonal (the first rows of an identity when rows < cols). */
export function eyeMatrix(b: Backend, rows: number, cols: number): Tensor {
  const out = emptyTensor(b, [rows, cols]);
  if (isGpu(b)) {
    const params = { u: { n: rows * cols, cols } };
    b.dispatch({
      key: "linalg_eye",
      params,
      inputs: [],
      outputs: [out.storage],
      grid: groups(rows * cols, WG),
      wgsl: () => `${paramsDecl(params)}${outputDecl(1, "out")}
${MAIN(WG)} {
  let i = ${LINEAR_WG} * ${WG}u + lid.x;
  if (i < p.n) { out[i] = select(0.0, 1.0, i / p.cols == i % p.cols); }
}`,
    });
  } else {
    const o = cpuData(out);
    for (let i = 0; i < Math.min(rows, cols); i++) o[i * cols + i] = 1;
  }
  return out;
}

/**
 * ±1 per column of the contiguous matrix `v`: the sign of the column's largest-magnitude entry
 * (the first such entry on ties), so that multiplying by it makes that entry positive.
 */
function columnSigns(v: Tensor): Tensor {
  const [rows, cols] = v.shape;
  const out = emptyTensor(v.backend, [cols]);
  const b = v.backend;
  if (isGpu(b)) {
    const params = { u: { rows, cols } };
    b.dispatch({
      key: "linalg_column_signs",
      params,
      inputs: [v.storage],
      outputs: [out.storage],
      grid: cols,
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "v", "f32")}${outputDecl(2, "out")}
var<workgroup> best: array<f32, ${WG}>;
var<workgroup> where_: array<u32, ${WG}>;
${MAIN(WG)} {
  let c = ${LINEAR_WG};
  if (c >= p.cols) { return; }
  var bv = -1.0;
  var bi = 0u;
  for (var r = lid.x; r < p.rows; r += ${WG}u) {
    let a = abs(v[r * p.cols + c]);
    if (a > bv) { bv = a; bi = r; }
  }
  best[lid.x] = bv;
  where_[lid.x] = bi;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      let ov = best[lid.x + s];
      let oi = where_[lid.x + s];
      if (ov > best[lid.x] || (ov == best[lid.x] && oi < where_[lid.x])) { best[lid.x] = ov; where_[lid.x] = oi; }
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) { out[c] = select(1.0, -1.0, v[where_[0] * p.cols + c] < 0.0); }
}`,
    });
  } else {
    const vd = cpuData(v);
    const o = cpuData(out);
    for (let c = 0; c < cols; c++) {
      let bi = 0;
      for (let r = 1; r < rows; r++) if (Math.abs(vd[r * cols + c]) > Math.abs(vd[bi * cols + c])) bi = r;
      o[c] = vd[bi * cols + c] < 0 ? -1 : 1;
    }
  }
  return out;
}

/**
 * The sign convention of svd, eigh and svdLowRank: flips each singular (eigen) pair so that the
 * largest-|.| component of v_i is positive. Consumes `u` and `v`; returns new tensors.
 */
export function normalizeSigns(u: Tensor | null, v: Tensor): { u: Tensor | null; v: Tensor } {
  const signs = columnSigns(v);
  const v2 = mul(v, signs);
  const u2 = u ? mul(u, signs) : null;
  for (const t of [u, v, signs]) t?.dispose();
  return { u: u2, v: v2 };
}
