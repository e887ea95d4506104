// Learning-rate schedules with the semantics of HF transformers' get_*_schedule_with_warmup:
// a multiplier of the base rate per optimizer step, warmup steps = ceil(ratio · total).
import { ArgumentError } from "../errors.js";

export type ScheduleKind = "constant" | "constant_with_warmup" | "linear" | "cosine";

export interface ScheduleOptions {
  totalSteps: number;
  warmupRatio?: number;
  warmupSteps?: number;
}

/** Returns step → multiplier of the base learning rate. */
export function lrSchedule(kind: ScheduleKind, opts: ScheduleOptions): (step: number) => number {
  const total = opts.totalSteps;
  if (!(total > 0)) throw new ArgumentError(`lrSchedule: totalSteps must be > 0, got ${total}`);
  const warmup = opts.warmupSteps ?? Math.ceil(total * (opts.warmupRatio ?? 0));
  switch (kind) {
    case "constant":
      return () => 1;
    case "constant_with_warmup":
      return (s) => (s < warmup ? s / Math.max(1, warmup) : 1);
    case "linear":
      return (s) => (s < warmup ? s / Math.max(1, warmup) : Math.max(0, (total - s) / Math.max(1, total - warmup)));
    case "cosine":
      return (s) => {
        if (s < warmup) return s / Math.max(1, warmup);
        const progress = (s - warmup) / Math.max(1, total - warmup);
        return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
      };
    default:
      throw new ArgumentError(`lrSchedule: unknown schedule "${kind as string}" (constant, constant_with_warmup, linear, cosine)`);
  }
}
