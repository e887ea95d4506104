// One micro-batch through the student (and, when a term needs it, the teacher: the same model with each
// adapter at its initial state) into the BA-LoRA loss; shared by the trainer and `balora loss`; and eval.
import { withInitialAdapters } from "@balora/lora";
import { CausalLM, type LanguageModel } from "@balora/models";
import { BaLoraLoss, factoredLogits, LmHead, type LogitsSource, type LossBatch, type LossResult } from "@balora/regularizers";
import * as T from "@balora/tensor";
import type { ClassificationBatch } from "../data/classification.js";
import type { CausalBatch } from "../data/instruction.js";

/** A collated micro-batch: causal-LM (labels [B, T]) or classification (labels [B]). */
export type TrainBatch = CausalBatch | ClassificationBatch;

/** A causal batch carries its supervised-token count; a classification batch does not. */
export const isCausalBatch = (b: TrainBatch): b is CausalBatch => "supervisedTokens" in b;

/**
 * The LM head the fused loss reads (hidden states × the frozen head, logits never formed), or null when
 * the head is trainable or wrapped by an adapter: the loss then takes materialised logits.
 */
export function fusedHeadOf(model: LanguageModel): LmHead | null {
  if (!(model instanceof CausalLM)) return null;
  const head = model.lm_head;
  if (!(head instanceof T.Linear) || head.bias || head.weight.requiresGrad) return null;
  return new LmHead(head.weight, { softcap: model.config.finalSoftcap > 0 ? model.config.finalSoftcap : null });
}

export interface BatchLossOptions {
  /** Optimizer steps completed before this one, and the run's total (λ schedules). */
  step: number;
  totalSteps: number;
  /** With gradient accumulation: the whole accumulated batch's counts (see LossBatch). */
  numItems?: number;
  accumulated?: LossBatch["accumulated"];
  /** The fused head from `fusedHeadOf` (null: materialised logits). */
  head: LmHead | null;
  /** Runs the teacher's forward (default: `withInitialAdapters(model, fn)`, base + each adapter's initial state). */
  teacherView?: <R>(fn: () => R) => R;
}

/**
 * A collated batch as device tensors: ids and attention mask [B, T] i32; labels [B, T] i32 (−100 where
 * not supervised) for a causal batch, [B] i32 class indices for a classification batch.
 */
export function batchTensors(batch: TrainBatch, backend: T.Backend): { ids: T.Tensor; mask: T.Tensor; labels: T.Tensor } {
  const shape = [batch.batchSize, batch.seqLength];
  const labelShape = isCausalBatch(batch) ? shape : [batch.batchSize];
  return {
    ids: T.tensor(batch.inputIds, shape, { backend, dtype: "i32" }),
    mask: T.tensor(batch.attentionMask, shape, { backend, dtype: "i32" }),
    labels: T.tensor(Int32Array.from(batch.labels), labelShape, { backend, dtype: "i32" }),
  };
}

/**
 * The loss of one micro-batch (device scalars, no readback): the student's forward with autograd, the
 * teacher's without (only when an active term reads it), then `loss.compute`. The caller backpropagates
 * `result.loss`, reads what it logs, then `BaLoraLoss.dispose(result)`.
 */
export function batchLoss(model: LanguageModel, loss: BaLoraLoss, batch: TrainBatch, opts: BatchLossOptions): LossResult {
  const backend = model.model.embed_tokens.weight.backend;
  const { ids, mask, labels } = batchTensors(batch, backend);
  try {
    const forward = (): LogitsSource =>
      opts.head && model instanceof CausalLM
        ? factoredLogits(model.model.forward(ids, { attentionMask: mask }), opts.head)
        : model.forward(ids, { attentionMask: mask });
    const student = forward();
    const view = opts.teacherView ?? (<R>(fn: () => R): R => withInitialAdapters(model, fn));
    const teacher = loss.needsTeacher ? view(() => T.noGrad(forward)) : null;
    try {
      return loss.compute({
        student,
        teacher,
        labels,
        step: opts.step,
        totalSteps: opts.totalSteps,
        numItems: opts.numItems,
        accumulated: opts.accumulated,
      });
    } finally {
      for (const s of [student, teacher]) if (s) (s instanceof T.Tensor ? s : s.hidden).dispose();
    }
  } finally {
    for (const t of [ids, mask, labels]) t.dispose();
  }
}

/** One eval batch's task-loss sum and counts (host numbers after one readback). */
export interface EvalBatchResult {
  /** Σ CE over the counted rows (supervised tokens, or examples). */
  lossSum: number;
  /** Rows the sum counts. */
  count: number;
  /** Classification: examples whose argmax class is the label. */
  correct?: number;
}

/**
 * The task loss of one batch without gradient (an evaluation): the mean CE from a loss with no
 * regularizer (`taskLoss`: the run's task type and mask, preset lora), times the batch's count; for a
 * classification batch also the correct argmax predictions.
 */
export async function evalBatch(
  model: LanguageModel,
  taskLoss: BaLoraLoss,
  batch: TrainBatch,
  head: LmHead | null,
): Promise<EvalBatchResult> {
  const backend = model.model.embed_tokens.weight.backend;
  const nlu = !isCausalBatch(batch);
  const count = isCausalBatch(batch) ? batch.supervisedTokens : batch.batchSize;
  const { ids, mask, labels } = batchTensors(batch, backend);
  try {
    const out = T.noGrad(() => {
      const student: LogitsSource =
        head && model instanceof CausalLM
          ? factoredLogits(model.model.forward(ids, { attentionMask: mask }), head)
          : model.forward(ids, { attentionMask: mask });
      const r = taskLoss.compute({ student, teacher: null, labels, step: 0, totalSteps: 1, numItems: count });
      const task = T.detach(r.task);
      BaLoraLoss.dispose(r);
      const hits = nlu ? T.sum(T.eq(T.cast(T.argmax(student as T.Tensor), "f32"), T.cast(labels, "f32"))) : null;
      (student instanceof T.Tensor ? student : student.hidden).dispose();
      return { task, hits };
    });
    const [mean, hits] = await Promise.all([out.task.item(), out.hits?.item()]);
    out.task.dispose();
    out.hits?.dispose();
    return { lossSum: mean * count, count, ...(nlu ? { correct: hits } : {}) };
  } finally {
    for (const t of [ids, mask, labels]) t.dispose();
  }
}
