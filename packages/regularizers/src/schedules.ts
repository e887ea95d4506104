// λ schedules for the regularizer weights, as functions of the optimizer steps completed before the
// current one (`step`) and the run's max steps (`total`), exactly as DESIGN.md §3 and the ICLR code.
import { ArgumentError } from "@balora/tensor";

/** A λ schedule: its kind and parameters (JSON-able; the `schedule` field of a term's config). */
export type LambdaSchedule =
  | { kind: "constant" }
  /** λ·(r + (1 − r)·½(1 + cos(π·step/total))): from λ at step 0 down to r·λ at the last step. */
  | { kind: "cosine"; finalRatio?: number }
  /** 0 for step < w = ⌊offRatio·total⌋, then (step − w)/R over R = max(⌊rampRatio·total⌋, 1) steps, then λ. */
  | { kind: "two_phase"; offRatio?: number; rampRatio?: number }
  /** λ·min(1, step/W)^p with W = max(⌊warmupRatio·total⌋, 1): p = 1 (linear) or 2 (quadratic). */
  | { kind: "linear_warmup" | "quadratic_warmup"; warmupRatio?: number };

export const SCHEDULE_KINDS = ["constant", "cosine", "two_phase", "linear_warmup", "quadratic_warmup"] as const;

/** Defaults of each schedule's parameters (the ICLR code's: cosine to 0.1, two_phase 0.2 off + 0.05 ramp). */
export const SCHEDULE_DEFAULTS = { finalRatio: 0.1, offRatio: 0.2, rampRatio: 0.05, warmupRatio: 0.1 } as const;

function ratio(what: string, v: unknown, fallback: number): number {
  const x = v === undefined ? fallback : v;
  if (typeof x !== "number" || !Number.isFinite(x) || x < 0 || x > 1)
    throw new ArgumentError(`λ schedule: ${what} must be a number in [0, 1], got ${JSON.stringify(v)}`);
  return x;
}

/** Checks a schedule object (from a config file) and fills its defaults; throws one clear line otherwise. */
export function parseSchedule(raw: unknown): LambdaSchedule {
  const s = (typeof raw === "string" ? { kind: raw } : raw) as { kind?: unknown } & Record<string, unknown>;
  if (!s || typeof s !== "object" || !SCHEDULE_KINDS.includes(s.kind as never))
    throw new ArgumentError(`λ schedule: kind must be one of ${SCHEDULE_KINDS.join(", ")}, got ${JSON.stringify(raw)}`);
  const allowed: Record<string, string[]> = {
    constant: [],
    cosine: ["finalRatio"],
    two_phase: ["offRatio", "rampRatio"],
    linear_warmup: ["warmupRatio"],
    quadratic_warmup: ["warmupRatio"],
  };
  for (const key of Object.keys(s))
    if (key !== "kind" && !allowed[s.kind as string].includes(key))
      throw new ArgumentError(`λ schedule "${s.kind}": unknown field "${key}" (fields: ${allowed[s.kind as string].join(", ") || "none"})`);
  switch (s.kind) {
    case "constant":
      return { kind: "constant" };
    case "cosine":
      return { kind: "cosine", finalRatio: ratio("finalRatio", s.finalRatio, SCHEDULE_DEFAULTS.finalRatio) };
    case "two_phase":
      return {
        kind: "two_phase",
        offRatio: ratio("offRatio", s.offRatio, SCHEDULE_DEFAULTS.offRatio),
        rampRatio: ratio("rampRatio", s.rampRatio, SCHEDULE_DEFAULTS.rampRatio),
      };
    default:
      return { kind: s.kind as "linear_warmup", warmupRatio: ratio("warmupRatio", s.warmupRatio, SCHEDULE_DEFAULTS.warmupRatio) };
  }
}

/**
 * The multiplier of λ at `step` (optimizer steps completed before the current one, 0 on the first)
 * of `total` (max steps). λ_used = λ · lambdaFactor(schedule, step, total).
 */
export function lambdaFactor(schedule: LambdaSchedule, step: number, total: number): number {
  if (!Number.isInteger(step) || step < 0) throw new ArgumentError(`λ schedule: step must be a non-negative integer, got ${step}`);
  if (!Number.isInteger(total) || total < 1) throw new ArgumentError(`λ schedule: total steps must be a positive integer, got ${total}`);
  switch (schedule.kind) {
    case "constant":
      return 1;
    case "cosine": {
      const r = schedule.finalRatio ?? SCHEDULE_DEFAULTS.finalRatio;
      return r + (1 - r) * 0.5 * (1 + Math.cos((Math.PI * Math.min(step, total)) / total));
    }
    case "two_phase": {
      const w = Math.floor((schedule.offRatio ?? SCHEDULE_DEFAULTS.offRatio) * total);
      const ramp = Math.max(Math.floor((schedule.rampRatio ?? SCHEDULE_DEFAULTS.rampRatio) * total), 1);
      if (step < w) return 0;
      return Math.min(1, (step - w) / ramp);
    }
    case "linear_warmup":
    case "quadratic_warmup": {
      const w = Math.max(Math.floor((schedule.warmupRatio ?? SCHEDULE_DEFAULTS.warmupRatio) * total), 1);
      const f = Math.min(1, step / w);
      return schedule.kind === "linear_warmup" ? f : f * f;
    }
  }
}

/**
 * The ICLR code's optional adaptive λ1 multiplier from the teacher's mean entropy H̄ (nats) over a
 * vocabulary of V: confidence c = 1 − clamp(H̄ / ln V, 0, 1), factor = min + (max − min)·c
 * (min 0.1, max 1 reproduce λ1·(0.1 + 0.9·(1 − clamp(H/ln V, 0, 1)))). Float64 reference of the device formula.
 */
export function adaptiveFactor(meanTeacherEntropy: number, vocab: number, min = 0.1, max = 1): number {
  const c = 1 - Math.min(1, Math.max(0, meanTeacherEntropy / Math.log(vocab)));
  return min + (max - min) * c;
}
