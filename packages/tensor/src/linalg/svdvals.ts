// Differentiable top-k singular values for the SVD regularizer on logits Z (N×V rows of a batch,
// V up to 256000): exact through the small Gram matrix, or randomized (svdLowRank) when both are large.
import { isGradEnabled, noGrad, record } from "../graph.js";
import { ArgumentError } from "../errors.js";
import { mul, sqrt } from "../ops/elementwise.js";
import { mapElementwise } from "../ops/elementwise-kernel.js";
import type { Tensor } from "../tensor.js";
import { matmul } from "../ops/matmul.js";
import { copyToContiguous } from "../ops/copy.js";
import { narrow } from "../ops/movement.js";
import { checkRank, machineEps, matrixDims } from "./common.js";
import { jacobiSvdOfRows } from "./jacobi.js";
import { lowRankUnsigned, sweepsOption } from "./svd.js";

export interface SvdvalsOptions {
  /** Default: "exact" when min(N, V) ≤ 64, else "randomized" (see EXACT_SVDVALS_MAX). */
  method?: "exact" | "randomized";
  /** Randomized: power iterations (default 2). */
  niter?: number;
  /** Randomized: extra sketch columns, q = min(k + oversample, N, V) (default 5). */
  oversample?: number;
  /** Randomized: seed of the Gaussian test matrix (default 0). */
  seed?: number;
  /** Jacobi sweeps encoded (see SvdOptions). */
  maxSweeps?: number;
}

/** Largest min(N, V) for which the default method is "exact". */
/**
 * Largest min(N, V) for which the default method is "exact". Jacobi on the Gram matrix costs about
 * min(N, V)³ per sweep: 4.6 s at 256 on lavapipe and 168 s for 1024×4096 logits, against well under a
 * second for the randomized sketch (q = k + 5), whose top-k values are within 1e-3 of the exact ones
 * on logits with a decaying spectrum. Pass `method: "exact"` to pay for exactness.
 */
export const EXACT_SVDVALS_MAX = 64;

interface TopK {
  s: Tensor;
  /** N×k and V×k singular vectors, only when a gradient will be needed. */
  u: Tensor | null;
  v: Tensor | null;
}

/**
 * The k largest singular values of a 2-D tensor, descending, with autograd (dZ = U_k·diag(g)·V_kᵀ).
 * f32 on the input's backend. The gradient assumes σ_1..σ_k are distinct (as for any SVD gradient).
 *
 * Gradient: ∂σ_i/∂Z = u_i·v_iᵀ, so dZ = U_k·diag(g)·V_kᵀ, one matmul of N×k by k×V. The exact path
 * squares Z: σ_i = √λ_i(Z·Zᵀ) (of the shorter side's Gram matrix), U = its eigenvectors,
 * V = Zᵀ·U/σ. Squaring costs relative accuracy in σ_i ≈ eps·(σ_1/σ_i)², harmless for the leading
 * values this is for; σ_i ≤ √eps·σ_1 is noise there, so such directions get a zero gradient instead
 * of a division by ≈0. The randomized path's gradient uses the same formula with its approximate
 * U_k, V_k (not the derivative of the sketch itself, which torch would differentiate through).
 */
export function svdvals(z: Tensor, k: number, opts: SvdvalsOptions = {}): Tensor {
  const [N, V] = matrixDims("svdvals", z);
  checkRank("svdvals", "k", k, Math.min(N, V), z);
  const method = opts.method ?? (Math.min(N, V) <= EXACT_SVDVALS_MAX ? "exact" : "randomized");
  if (method !== "exact" && method !== "randomized")
    throw new ArgumentError(`svdvals: method must be "exact" or "randomized", got ${String(method)}`);
  const niter = opts.niter ?? 2;
  const oversample = opts.oversample ?? 5;
  for (const [name, val] of [
    ["niter", niter],
    ["oversample", oversample],
  ] as const)
    if (!Number.isInteger(val) || val < 0) throw new ArgumentError(`svdvals: ${name} must be a non-negative integer, got ${val}`);
  const maxSweeps = sweepsOption("svdvals", opts.maxSweeps);
  const wantVectors = isGradEnabled() && z.requiresGrad;
  const top = noGrad(() =>
    method === "exact"
      ? exactTopK(z, k, wantVectors, maxSweeps)
      : randomizedTopK(z, k, wantVectors, Math.min(k + oversample, N, V), niter, opts.seed ?? 0, maxSweeps),
  );
  return record(
    top.s,
    "svdvals",
    [z],
    (g, _needs, [u, v]) => {
      const scaled = mul(u, g);
      const dz = matmul(scaled, v, { transB: true });
      scaled.dispose();
      return [dz];
    },
    top.u && top.v ? [top.u, top.v] : [],
  );
}

/** Contiguous copy of the first `count` entries of `t` along `axis`; disposes `t`. */
function leading(t: Tensor, axis: number, count: number): Tensor {
  const view = narrow(t, axis, 0, count);
  const out = copyToContiguous(view);
  view.dispose();
  t.dispose();
  return out;
}

function exactTopK(z: Tensor, k: number, wantVectors: boolean, maxSweeps: number): TopK {
  const [N, V] = z.shape;
  const wide = N <= V;
  // The Gram matrix of the short side; matmul sums each entry in the same order, so it is exactly symmetric.
  const gram = wide ? matmul(z, z, { transB: true }) : matmul(z, z, { transA: true });
  // Gram is PSD: its singular values are its eigenvalues; symmetric: its rows are its columns.
  const eig = jacobiSvdOfRows(gram, { wantU: false, maxSweeps });
  gram.dispose();
  const lambda = leading(eig.s, 0, k);
  const s = sqrt(lambda);
  lambda.dispose();
  if (!wantVectors) {
    eig.v.dispose();
    return { s, u: null, v: null };
  }
  const short = leading(eig.v, 1, k);
  const other = wide ? matmul(z, short, { transA: true }) : matmul(z, short);
  const first = narrow(s, 0, 0, 1);
  const threshold = Math.sqrt(machineEps(z.backend));
  const inv = mapElementwise(
    "svdvals_inverse",
    [s, first, threshold],
    ([x, x0, t]) => `select(0.0, 1.0 / ${x}, ${x} > ${x0} * ${t})`,
    (x, x0, t) => (x > x0 * t ? 1 / x : 0),
  );
  const long = mul(other, inv);
  for (const t of [first, inv, other]) t.dispose();
  return wide ? { s, u: short, v: long } : { s, u: long, v: short };
}

function randomizedTopK(z: Tensor, k: number, wantVectors: boolean, q: number, niter: number, seed: number, maxSweeps: number): TopK {
  const r = lowRankUnsigned(z, q, niter, seed, maxSweeps);
  const s = leading(r.s, 0, k);
  if (!wantVectors) {
    r.u.dispose();
    r.v.dispose();
    return { s, u: null, v: null };
  }
  return { s, u: leading(r.u, 1, k), v: leading(r.v, 1, k) };
}
