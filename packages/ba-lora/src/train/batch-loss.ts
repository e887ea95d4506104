// One micro-batch through the student (and, when a term needs it, the teacher: the same model with each
// adapter at its initial state) into the BA-LoRA loss; shared by the trainer and `balora loss`; and eval.
import { withInitialAdapters } from "@balora/lora";
import { CausalLM, type LanguageModel, supervisedRows } from "@balora/models";
import {
  BaLoraLoss,
  BUILT_IN_REGULARIZERS,
  factoredLogits,
  LmHead,
  type LogitsSource,
  type LossBatch,
  type LossResult,
} from "@balora/regularizers";
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
 * Whether the loss reads only the supervised rows (so the LM head may skip the others): the shifted
 * mask, built-in terms only (a plugin may read any row) and the SVD term over the stacked batch.
 */
function readsSupervisedRowsOnly(loss: BaLoraLoss): boolean {
  const { taskType, maskMode, terms } = loss.config;
  if (taskType !== "nlg" || maskMode !== "shifted") return false;
  return terms.every(
    (t) =>
      t.regularizer === BUILT_IN_REGULARIZERS[t.name as keyof typeof BUILT_IN_REGULARIZERS] &&
      (t.name !== "svd" || (t.options as { scope?: string }).scope === "batch"),
  );
}

/** A causal batch's supervised rows, packed: what the loss sees in place of the [B, T] rows. */
interface PackedRows {
  /** [M + 1] i32 flattened positions b·T + t: the M supervised rows in order, then a filler row. */
  rows: T.Tensor;
  /** [1, M + 1] i32: −100, then row j's target at j + 1, so the causal shift gives row j its target and the filler none. */
  labels: T.Tensor;
}

/**
 * Gathers the supervised rows of a causal batch for the fused head: the LM head then runs on M + 1 rows
 * instead of B·T (prompt and padding rows skipped), with the same values and gradients under the
 * shifted mask, where no term counts the other rows. The filler row (the first position) is masked by the shift.
 */
function packSupervisedRows(batch: CausalBatch, backend: T.Backend): PackedRows {
  const { rows, targets } = supervisedRows(batch.labels, batch.batchSize, batch.seqLength);
  const positions = new Int32Array(rows.length + 1);
  positions.set(rows);
  const labels = new Int32Array(rows.length + 1).fill(-100);
  labels.set(targets, 1);
  return {
    rows: T.tensor(positions, [positions.length], { backend, dtype: "i32" }),
    labels: T.tensor(labels, [1, labels.length], { backend, dtype: "i32" }),
  };
}

/** The final hidden states [B, T, h] reduced to the packed rows [1, M + 1, h]. */
function packedHidden(hidden: T.Tensor, packed: PackedRows): T.Tensor {
  const h = hidden.shape[hidden.rank - 1];
  const flat = T.reshape(hidden, [-1, h]);
  const picked = T.embedding(flat, packed.rows);
  const out = T.reshape(picked, [1, -1, h]);
  for (const t of [flat, hidden, picked]) t.dispose();
  return out;
}

/**
 * The student's (or, under the teacher view, the teacher's) logits source for a batch: factored
 * through the fused head (on the packed rows when given), else materialised logits.
 */
function logitsSource(model: LanguageModel, head: LmHead | null, ids: T.Tensor, mask: T.Tensor, packed: PackedRows | null): LogitsSource {
  if (!head || !(model instanceof CausalLM)) return model.forward(ids, { attentionMask: mask });
  const hidden = model.model.forward(ids, { attentionMask: mask });
  return factoredLogits(packed ? packedHidden(hidden, packed) : hidden, head);
}

const disposeSource = (s: LogitsSource) => (s instanceof T.Tensor ? s : s.hidden).dispose();

/**
 * The loss of one micro-batch (device scalars, no readback): the student's forward with autograd, the
 * teacher's without (only when an active term reads it), then `loss.compute`. The caller backpropagates
 * `result.loss`, reads what it logs, then `BaLoraLoss.dispose(result)`. With the fused head and a loss
 * that reads only supervised rows, the head runs on those rows alone.
 */
export function batchLoss(model: LanguageModel, loss: BaLoraLoss, batch: TrainBatch, opts: BatchLossOptions): LossResult {
  const backend = model.model.embed_tokens.weight.backend;
  const { ids, mask, labels } = batchTensors(batch, backend);
  const packed = opts.head && isCausalBatch(batch) && readsSupervisedRowsOnly(loss) ? packSupervisedRows(batch, backend) : null;
  try {
    const forward = () => logitsSource(model, opts.head, ids, mask, packed);
    const student = forward();
    const view = opts.teacherView ?? (<R>(fn: () => R): R => withInitialAdapters(model, fn));
    const teacher = loss.needsTeacher ? view(() => T.noGrad(forward)) : null;
    try {
      return loss.compute({
        student,
        teacher,
        labels: packed ? packed.labels : labels,
        step: opts.step,
        totalSteps: opts.totalSteps,
        numItems: opts.numItems,
        // Packed rows are one sequence to the loss: the per-sequence mean (batchmean) keeps the batch's count.
        accumulated: packed ? { sequences: batch.batchSize, ...opts.accumulated } : opts.accumulated,
      });
    } finally {
      for (const s of [student, teacher]) if (s) disposeSource(s);
    }
  } finally {
    for (const t of [ids, mask, labels, packed?.rows, packed?.labels]) t?.dispose();
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
  const packed = head && isCausalBatch(batch) && readsSupervisedRowsOnly(taskLoss) ? packSupervisedRows(batch, backend) : null;
  try {
    // [mean task CE, correct predictions (classification)] in one readback.
    const read = T.noGrad(() => {
      const student = logitsSource(model, head, ids, mask, packed);
      const r = taskLoss.compute({
        student,
        teacher: null,
        labels: packed ? packed.labels : labels,
        step: 0,
        totalSteps: 1,
        numItems: count,
      });
      const hits = nlu ? T.sum(T.eq(T.cast(T.argmax(student as T.Tensor), "f32"), T.cast(labels, "f32"))) : null;
      const values = T.tidy(() => T.concat([r.task, ...(hits ? [hits] : [])].map((t) => T.reshape(T.detach(t), [1]))));
      BaLoraLoss.dispose(r);
      hits?.dispose();
      disposeSource(student);
      return values;
    });
    const [mean, hits] = await read.data();
    read.dispose();
    return { lossSum: mean * count, count, ...(nlu ? { correct: hits } : {}) };
  } finally {
    for (const t of [ids, mask, labels, packed?.rows, packed?.labels]) t?.dispose();
  }
}
