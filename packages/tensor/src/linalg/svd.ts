// Exact thin SVD (one-sided Jacobi, after a Householder QR when the matrix is tall) and the randomized
// top-q SVD of Halko et al. as in torch.svd_lowrank: PiSSA's initialisation and the SVD regularizer.
import { noGrad } from "../graph.js";
import { randn } from "../creation.js";
import { ArgumentError } from "../errors.js";
import type { Tensor } from "../tensor.js";
import { matmul } from "../ops/matmul.js";
import { transpose } from "../ops/movement.js";
import { checkRank, matrixDims, normalizeSigns, workingCopy } from "./common.js";
import { DEFAULT_MAX_SWEEPS, jacobiSvdOfRows } from "./jacobi.js";
import { householderQr } from "./qr.js";

export interface SvdOptions {
  /**
   * Jacobi sweeps encoded (default 20). On WebGPU they are all encoded up front and the ones after
   * convergence return at once; raise it only if U loses orthogonality on very large matrices.
   */
  maxSweeps?: number;
}

export interface SvdResult {
  /** m×k left singular vectors (columns). */
  u: Tensor;
  /** k singular values, descending. */
  s: Tensor;
  /** n×k right singular vectors (columns), the largest-|.| entry of each one positive. */
  v: Tensor;
}

export interface SvdLowRankOptions extends SvdOptions {
  /** Power (subspace) iterations, as torch.svd_lowrank's niter (default 2). */
  niter?: number;
  /** Seed of the Gaussian test matrix (default 0). */
  seed?: number;
}

/** Jacobi on an R with at least this many times fewer columns than A's rows beats Jacobi on A. */
const PRE_QR_RATIO = 2;

export function sweepsOption(op: string, maxSweeps: number | undefined): number {
  const v = maxSweeps ?? DEFAULT_MAX_SWEEPS;
  if (!Number.isInteger(v) || v < 1) throw new ArgumentError(`${op}: maxSweeps must be a positive integer, got ${maxSweeps}`);
  return v;
}

/**
 * Thin SVD A = U·diag(S)·Vᵀ of an m×n matrix, k = min(m, n): u m×k, s k (descending), v n×k, f32 on
 * the input's backend. Signs: the largest-magnitude component of each v_i is positive (ties: the
 * first). Rank deficiency: singular values that are zero to working precision (below
 * ≈ 8·√k·eps·‖A‖_F) get a zero column in the factor built by normalising rotated columns (u when
 * m ≥ n, v when m < n) instead of an arbitrary orthonormal completion; the other factor stays
 * orthonormal. No autograd (use svdvals for gradients of singular values).
 */
export function svd(a: Tensor, opts: SvdOptions = {}): SvdResult {
  matrixDims("svd", a);
  const maxSweeps = sweepsOption("svd", opts.maxSweeps);
  return noGrad(() => withSignRule(svdUnsigned(a, maxSweeps)));
}

function withSignRule(r: SvdResult): SvdResult {
  const { u, v } = normalizeSigns(r.u, r.v);
  return { u: u!, s: r.s, v };
}

/** Thin SVD without the sign rule. A wide matrix is decomposed as its (tall) transpose. */
export function svdUnsigned(a: Tensor, maxSweeps: number): SvdResult {
  const [m, n] = a.shape;
  if (m >= n) return tallSvd(a, maxSweeps);
  const at = transpose(a);
  const r = tallSvd(at, maxSweeps);
  at.dispose();
  return { u: r.v, s: r.s, v: r.u };
}

/** SVD of a tall X (L×k): Jacobi on Xᵀ's rows, or on R's when X = QR is at least twice as tall as wide. */
function tallSvd(x: Tensor, maxSweeps: number): SvdResult {
  const [L, k] = x.shape;
  const factored = L >= PRE_QR_RATIO * k && k > 1 ? householderQr(x) : null;
  const rows = workingCopy(factored ? factored.r : x, true);
  const res = jacobiSvdOfRows(rows, { wantU: true, maxSweeps });
  rows.dispose();
  if (!factored) return { u: res.u!, s: res.s, v: res.v };
  const u = matmul(factored.q, res.u!);
  for (const t of [factored.q, factored.r, res.u!]) t.dispose();
  return { u, s: res.s, v: res.v };
}

/**
 * Randomized top-q SVD, the algorithm of torch.svd_lowrank(A, q, niter) (Halko, Martinsson & Tropp
 * 2009, alg. 5.1 with subspace iteration): Q = qr(A·Ω), niter × {Q = qr(Aᵀ·Q); Q = qr(A·Q)},
 * B = Qᵀ·A, exact SVD of B, U = Q·U_B. Ω is a seeded Gaussian drawn on the host. Like torch, a wide
 * A (m < n) is sketched through Aᵀ, so Ω is always min(m, n)×q and the big basis lives on the long
 * side. Returns u m×q, s q, v n×q, with svd's sign rule. No autograd.
 */
export function svdLowRank(a: Tensor, q: number, opts: SvdLowRankOptions = {}): SvdResult {
  const [m, n] = matrixDims("svdLowRank", a);
  checkRank("svdLowRank", "q", q, Math.min(m, n), a);
  const niter = opts.niter ?? 2;
  if (!Number.isInteger(niter) || niter < 0) throw new ArgumentError(`svdLowRank: niter must be a non-negative integer, got ${opts.niter}`);
  const maxSweeps = sweepsOption("svdLowRank", opts.maxSweeps);
  return noGrad(() => withSignRule(lowRankUnsigned(a, q, niter, opts.seed ?? 0, maxSweeps)));
}

/** svdLowRank without checks or the sign rule, for svdvals. */
export function lowRankUnsigned(a: Tensor, q: number, niter: number, seed: number, maxSweeps: number): SvdResult {
  const [m, n] = a.shape;
  if (m >= n) return tallLowRank(a, q, niter, seed, maxSweeps);
  const at = transpose(a);
  const r = tallLowRank(at, q, niter, seed, maxSweeps);
  at.dispose();
  return { u: r.v, s: r.s, v: r.u };
}

function tallLowRank(a: Tensor, q: number, niter: number, seed: number, maxSweeps: number): SvdResult {
  const omega = randn([a.shape[1], q], { seed, backend: a.backend });
  let basis = orthonormalBasis(matmul(a, omega));
  omega.dispose();
  for (let i = 0; i < niter; i++) {
    const rowBasis = orthonormalBasis(matmul(a, basis, { transA: true }));
    basis.dispose();
    basis = orthonormalBasis(matmul(a, rowBasis));
    rowBasis.dispose();
  }
  const projected = matmul(basis, a, { transA: true }); // q×n
  const small = svdUnsigned(projected, maxSweeps);
  projected.dispose();
  const u = matmul(basis, small.u);
  basis.dispose();
  small.u.dispose();
  return { u, s: small.s, v: small.v };
}

/** Q of a thin QR of `y` (consumed). */
function orthonormalBasis(y: Tensor): Tensor {
  const { q, r } = householderQr(y);
  y.dispose();
  r.dispose();
  return q;
}
