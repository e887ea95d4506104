// The Regularizer interface and the context a loss sees: a logits source (materialised or factored
// through the LM head), the supervision mask, the task type, and where the run is (step of total).
import type { Tensor } from "@balora/tensor";
import type { LmHead } from "./source.js";

export type TaskType = "nlg" | "nlu";
/** Which logit rows count: `shifted` (logit t iff labels[t+1] ≠ −100, default), `unshifted` (labels[t] ≠ −100), `none` (all). */
export type MaskMode = "shifted" | "unshifted" | "none";

/** Logits never formed: rows of `hidden` [..., h] times the LM head's weight [V, h]ᵀ (then its soft-cap, if any). */
export interface FactoredLogits {
  readonly kind: "factored";
  readonly hidden: Tensor;
  readonly head: LmHead;
}

/** Student or teacher logits: a tensor ([B, T, V] for NLG, [B, C] for NLU) or a factored source. */
export type LogitsSource = Tensor | FactoredLogits;

export interface RegularizerContext {
  student: LogitsSource;
  /** The frozen teacher's logits (no gradient), or null when no regularizer needs it. */
  teacher: LogitsSource | null;
  /** 1/0 per logit row, f32: [B, T] for NLG (already resolved from maskMode), [B] for NLU. */
  mask: Tensor;
  taskType: TaskType;
  /** Optimizer steps completed before the current one (0 on the first step). */
  step: number;
  /** The run's max steps. */
  totalSteps: number;
  /** Supervised rows of the whole accumulated batch, when token means are taken over it (else each micro-batch's own count). */
  numItems?: number;
  /** Rows of the whole accumulated batch that `mask` counts (token means of the terms); undefined: this micro-batch's Σ mask. */
  numValid?: number;
  /** Sequences of the whole accumulated batch (the `batchmean` reduction); undefined: this micro-batch's B. */
  numSequences?: number;
  /** Prints `message` once per run (the runner's `warn`). */
  warn(message: string): void;
  /**
   * Marks the term vacuous (value 0, zero gradient) with one warning per run: a host boolean warns at
   * once; a device 0/1 scalar is read by `BaLoraLoss.checkWarnings` when the trainer reads its metrics.
   */
  reportVacuous(flag: boolean | Tensor, message: string): void;
}

/** A regularizer: a name, whether it reads the teacher, default options and a loss (a device scalar, no readback). */
export interface Regularizer<O extends Record<string, unknown> = Record<string, unknown>> {
  readonly name: string;
  readonly needsTeacher: boolean;
  readonly defaults: O;
  /**
   * How the term combines over gradient-accumulation micro-batches: "sum" when its value already divides
   * by the accumulated batch's counts (`numValid`, `numSequences`: token means), "mean" (default) when
   * it is a per-batch value that the loss averages over the micro-batches (the SVD term).
   */
  readonly accumulate?: "sum" | "mean" | ((taskType: TaskType) => "sum" | "mean");
  /** Optional check of merged options from a config; throws one line naming `field`. */
  validate?(options: O, field: string): void;
  /** The term's value as a scalar tensor with autograd to the student's logits (or hidden states). */
  loss(ctx: RegularizerContext, options: O): Tensor;
}
