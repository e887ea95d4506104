// The three built-in regularizers (consistency, diversity, SVD) for NLG and NLU, each a Regularizer
// over a logits source: token terms go through the row pass (materialised or fused), SVD through svdTerm.
import * as T from "@balora/tensor";
import { ArgumentError, type Tensor } from "@balora/tensor";
import { materialize } from "./source.js";
import { type SvdTermOptions, svdTerm, validateSvdOptions } from "./svd.js";
import { flatRows, MAX_TOP_K, tokenTerms } from "./token.js";
import type { Regularizer, RegularizerContext } from "./types.js";

export interface ConsistencyOptions extends Record<string, unknown> {
  /** Temperature τ; the KL is multiplied by τ². */
  tau: number;
  /** Token KLs: mean over valid rows (iclr2026), sum / batch size ("batchmean", v5), or "sum". */
  reduction: "mean" | "batchmean" | "sum";
  /** NLU form: temperature KL on class logits (iclr2026) or MSE of L2-normalised logits (v5). */
  nlu: "kl" | "mse";
  /** The ICLR code's adaptive λ1 (teacher entropy → confidence → a factor in [min, max]), or false. */
  adaptive: false | { min: number; max: number };
}

export interface DiversityOptions extends Record<string, unknown> {
  /** Entropy of the top-k logits renormalised (iclr2026: 20); 0 = the full vocabulary (v5). */
  topK: number;
}

export type SvdOptions = SvdTermOptions & Record<string, unknown>;

export { MAX_TOP_K };

const oneOf = (o: Record<string, unknown>, field: string, name: string, values: string[]) => {
  if (!values.includes(o[name] as string))
    throw new ArgumentError(`${field}.${name}: must be ${values.map((v) => `"${v}"`).join(" or ")}, got ${JSON.stringify(o[name])}`);
};

/** A [3] f32 weight vector from host numbers or device scalars (no autograd). */
export function weightVector(backend: T.Backend, w: (number | Tensor)[]): Tensor {
  return T.noGrad(() => T.concat(w.map((x) => (typeof x === "number" ? T.tensor([x], [1], { backend }) : T.reshape(x, [1])))));
}

/** The count of valid rows for token means: the accumulated batch's when the trainer gives it, else max(Σ mask, 1) on the device. */
export function validCount(ctx: Pick<RegularizerContext, "mask" | "numValid">): number | Tensor {
  if (ctx.numValid !== undefined) return Math.max(ctx.numValid, 1);
  return T.noGrad(() => T.maximum(T.sum(ctx.mask), 1));
}

const inverse = (x: number | Tensor) => (typeof x === "number" ? 1 / x : T.noGrad(() => T.div(1, x)));
const times = (a: number | Tensor, b: number) => (typeof a === "number" ? a * b : T.noGrad(() => T.mul(a, b)));

/** τ²·KL weight per row for a reduction: 1/valid count, 1/B, or 1. */
export function consistencyWeight(ctx: RegularizerContext, o: ConsistencyOptions): number | Tensor {
  const t2 = o.tau * o.tau;
  if (o.reduction === "sum") return t2;
  if (o.reduction === "batchmean") return t2 / (ctx.numSequences ?? ctx.mask.shape[0]);
  return times(inverse(validCount(ctx)), t2);
}

function requireTeacher(ctx: RegularizerContext): void {
  if (!ctx.teacher) throw new ArgumentError("consistency: needs the teacher's logits; pass teacher (base + initial adapter, no gradient)");
}

/** MSE of L2-normalised logits over valid rows (the v5 NLU form). */
function normalisedMse(ctx: RegularizerContext): Tensor {
  const zs = materialize(ctx.student);
  const zt = T.noGrad(() => T.detach(materialize(ctx.teacher!)));
  const C = zs.shape[zs.rank - 1];
  const norm = (z: Tensor) => T.div(z, T.maximum(T.sqrt(T.sum(T.square(z), -1, true)), 1e-12));
  const d = T.sub(norm(zs), norm(zt));
  const rows = T.sum(T.square(d), -1);
  const m = flatRows(ctx.mask, null);
  const count = validCount(ctx);
  const total = T.sum(T.mul(T.reshape(rows, [m.size]), m));
  return T.div(total, times(count, C));
}

export const consistencyRegularizer: Regularizer<ConsistencyOptions> = {
  name: "consistency",
  needsTeacher: true,
  accumulate: "sum",
  defaults: { tau: 2, reduction: "mean", nlu: "kl", adaptive: false },
  validate(o, field) {
    if (typeof o.tau !== "number" || !(o.tau > 0))
      throw new ArgumentError(`${field}.tau: must be a number > 0, got ${JSON.stringify(o.tau)}`);
    oneOf(o, field, "reduction", ["mean", "batchmean", "sum"]);
    oneOf(o, field, "nlu", ["kl", "mse"]);
    const a = o.adaptive;
    if (a !== false) {
      const ok = a && typeof a === "object" && typeof a.min === "number" && typeof a.max === "number" && a.min >= 0 && a.max >= a.min;
      if (!ok) throw new ArgumentError(`${field}.adaptive: must be false or { "min": a, "max": b } with 0 ≤ a ≤ b`);
    }
  },
  loss(ctx, o) {
    requireTeacher(ctx);
    if (ctx.taskType === "nlu" && o.nlu === "mse") return normalisedMse(ctx);
    const backend = ctx.mask.backend;
    const { total, rows } = tokenTerms({
      student: ctx.student,
      teacher: ctx.teacher,
      targets: null,
      mask: ctx.mask,
      weights: weightVector(backend, [0, consistencyWeight(ctx, o), 0]),
      ce: false,
      kl: true,
      ent: false,
      tau: o.tau,
      topK: 0,
    });
    rows.dispose();
    return total;
  },
};

/** Σ_{i≠j} Cov_ij² / C of the valid rows' class logits, Cov = Zcᵀ·Zc/(n − 1) (a penalty: minimised). */
function covariancePenalty(ctx: RegularizerContext): Tensor {
  const z = materialize(ctx.student);
  const C = z.shape[z.rank - 1];
  const n = z.size / C;
  const z2 = T.reshape(z, [n, C]);
  const m = T.reshape(flatRows(ctx.mask, null), [n, 1]);
  const count = T.noGrad(() => T.sum(m));
  ctx.reportVacuous(
    n < 2 ? true : T.noGrad(() => T.lt(count, 2)),
    "diversity (NLU): the covariance of fewer than 2 valid rows is vacuous (0)",
  );
  if (n < 2) return T.zeros([], { backend: z.backend });
  const mean = T.div(T.sum(T.mul(z2, m), 0, true), T.maximum(count, 1));
  const zc = T.mul(T.sub(z2, mean), m);
  const cov = T.div(T.matmul(zc, zc, { transA: true }), T.maximum(T.sub(count, 1), 1));
  const sq = T.square(cov);
  const eye = T.noGrad(() => T.eq(T.reshape(T.arange(0, C, 1, { backend: z.backend }), [C, 1]), T.arange(0, C, 1, { backend: z.backend })));
  const off = T.mul(sq, T.sub(1, eye));
  return T.mul(
    T.div(T.sum(off), C),
    T.noGrad(() => T.ge(count, 2)),
  );
}

export const diversityRegularizer: Regularizer<DiversityOptions> = {
  name: "diversity",
  needsTeacher: false,
  accumulate: (task) => (task === "nlg" ? "sum" : "mean"),
  defaults: { topK: 20 },
  validate(o, field) {
    if (typeof o.topK !== "number" || !Number.isInteger(o.topK) || o.topK < 0 || o.topK > MAX_TOP_K)
      throw new ArgumentError(
        `${field}.topK: must be an integer in [0, ${MAX_TOP_K}] (0 = full vocabulary), got ${JSON.stringify(o.topK)}`,
      );
  },
  loss(ctx, o) {
    if (ctx.taskType === "nlu") return covariancePenalty(ctx);
    const backend = ctx.mask.backend;
    const { total, rows } = tokenTerms({
      student: ctx.student,
      teacher: null,
      targets: null,
      mask: ctx.mask,
      weights: weightVector(backend, [0, 0, times(inverse(validCount(ctx)), -1)]),
      ce: false,
      kl: false,
      ent: true,
      tau: 1,
      topK: o.topK,
    });
    rows.dispose();
    return total;
  },
};

export const svdRegularizer: Regularizer<SvdOptions> = {
  name: "svd",
  needsTeacher: false,
  defaults: { k: 10, denominator: "frobenius", scope: "batch", method: "exact", niter: 2, oversample: 5 },
  validate: (o, field) => validateSvdOptions(o, field),
  loss(ctx, o) {
    const opts = ctx.taskType === "nlu" ? { ...o, scope: "batch" as const } : o;
    return svdTerm(ctx.student, ctx.mask, opts, (flag, message) => ctx.reportVacuous(flag, message));
  },
};

/** The built-ins: a static table, so bundlers that drop import-time code keep them. */
export const BUILT_IN_REGULARIZERS: Readonly<Record<string, Regularizer>> = Object.freeze({
  consistency: consistencyRegularizer as unknown as Regularizer,
  diversity: diversityRegularizer as unknown as Regularizer,
  svd: svdRegularizer as unknown as Regularizer,
});
