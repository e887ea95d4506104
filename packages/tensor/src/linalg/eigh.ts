// Symmetric eigendecomposition on the Jacobi engine, for whoever needs eigenpairs of a Gram or
// covariance matrix: one-sided Jacobi on the positive semidefinite A + c·I, then λ = σ − c.
import { noGrad } from "../graph.js";
import { ShapeError, fmtShape } from "../errors.js";
import { sqrt, square, sub } from "../ops/elementwise.js";
import { mapElementwise } from "../ops/elementwise-kernel.js";
import type { Tensor } from "../tensor.js";
import { transpose } from "../ops/movement.js";
import { sum } from "../ops/reduce.js";
import { matrixDims, normalizeSigns } from "./common.js";
import { jacobiSvdOfRows } from "./jacobi.js";
import { sweepsOption, type SvdOptions } from "./svd.js";

export type EighOptions = SvdOptions;

/**
 * Eigendecomposition A = V·diag(λ)·Vᵀ of a symmetric n×n matrix: values (n) in descending order,
 * vectors n×n with the eigenvectors as columns, the largest-|.| entry of each positive. Only the
 * symmetric part (A + Aᵀ)/2 is used; symmetry is not checked (that would need a GPU readback).
 * f32 on the input's backend, no autograd.
 *
 * Why the shift: for a PSD matrix the singular values are the eigenvalues and V holds the
 * eigenvectors, so the SVD engine serves as is, and eigenvalues of opposite sign (whose equal |λ|
 * would mix u and v) cannot occur. c = ‖A‖_F ≥ ‖A‖_2 makes A + c·I PSD for any symmetric A.
 * Precision trade-off: σ comes with absolute error ≈ eps·‖A + c·I‖ ≤ 2·eps·‖A‖_F, so λ = σ − c has
 * absolute error ≈ eps·‖A‖_F instead of a direct solver's eps·‖A‖_2: eigenvalues much smaller than
 * ‖A‖_F lose relative accuracy (in f32, |λ| ≈ 1e-6·‖A‖_F is noise). Eigenvectors are as accurate as
 * usual (≈ eps·‖A‖/gap), and orthonormal to rounding because they are accumulated rotations.
 */
export function eigh(a: Tensor, opts: EighOptions = {}): { values: Tensor; vectors: Tensor } {
  const [m, n] = matrixDims("eigh", a);
  if (m !== n) throw new ShapeError(`eigh: expected a square (symmetric) matrix, got shape ${fmtShape(a.shape)}`);
  const maxSweeps = sweepsOption("eigh", opts.maxSweeps);
  return noGrad(() => {
    const at = transpose(a);
    const sym = mapElementwise(
      "linalg_symmetric_part",
      [a, at],
      ([x, y]) => `0.5 * (${x} + ${y})`,
      (x, y) => 0.5 * (x + y),
    );
    at.dispose();
    const shift = frobeniusNorm(sym);
    const shifted = mapElementwise(
      "linalg_add_to_diagonal",
      [sym, shift, n],
      ([x, c, size]) => `select(${x}, ${x} + ${c}, i % (u32(${size}) + 1u) == 0u)`,
      (x, c, size, i) => (i % (size + 1) === 0 ? x + c : x),
    );
    sym.dispose();
    // Symmetric, so its rows are its columns: Jacobi orthogonalises them in place.
    const { s, v } = jacobiSvdOfRows(shifted, { wantU: false, maxSweeps });
    shifted.dispose();
    const values = sub(s, shift);
    s.dispose();
    shift.dispose();
    return { values, vectors: normalizeSigns(null, v).v };
  });
}

function frobeniusNorm(x: Tensor): Tensor {
  const sq = square(x);
  const total = sum(sq);
  const norm = sqrt(total);
  sq.dispose();
  total.dispose();
  return norm;
}
