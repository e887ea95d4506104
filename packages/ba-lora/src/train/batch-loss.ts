// One micro-batch through the student (and, when a term needs it, the teacher: the same model with each
// adapter at its initial state) into the BA-LoRA loss; shared by the trainer and `balora loss`.
import { withInitialAdapters } from "@balora/lora";
import type { CausalLM } from "@balora/models";
import { type BaLoraLoss, factoredLogits, LmHead, type LogitsSource, type LossBatch, type LossResult } from "@balora/regularizers";
import * as T from "@balora/tensor";
import type { CausalBatch } from "../data/instruction.js";

/**
 * The LM head the fused loss reads (hidden states × the frozen head, logits never formed), or null when
 * the head is trainable or wrapped by an adapter: the loss then takes materialised logits.
 */
export function fusedHeadOf(model: CausalLM): LmHead | null {
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

/** A collated batch as device tensors: ids and attention mask [B, T] i32, labels [B, T] i32 (−100 where not supervised). */
export function batchTensors(batch: CausalBatch, backend: T.Backend): { ids: T.Tensor; mask: T.Tensor; labels: T.Tensor } {
  const shape = [batch.batchSize, batch.seqLength];
  return {
    ids: T.tensor(batch.inputIds, shape, { backend, dtype: "i32" }),
    mask: T.tensor(batch.attentionMask, shape, { backend, dtype: "i32" }),
    labels: T.tensor(batch.labels, shape, { backend, dtype: "i32" }),
  };
}

/**
 * The loss of one micro-batch (device scalars, no readback): the student's forward with autograd, the
 * teacher's without (only when an active term reads it), then `loss.compute`. The caller backpropagates
 * `result.loss`, reads what it logs, then `BaLoraLoss.dispose(result)`.
 */
export function batchLoss(model: CausalLM, loss: BaLoraLoss, batch: CausalBatch, opts: BatchLossOptions): LossResult {
  const backend = model.model.embed_tokens.weight.backend;
  const { ids, mask, labels } = batchTensors(batch, backend);
  try {
    const forward = (): LogitsSource =>
      opts.head
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
