// The order examples are visited in: a seeded permutation per epoch that is a pure function of
// (seed, epoch), so a run resumed at optimizer step k sees exactly the batches it would have seen.
import { dropoutKey, Rng } from "@balora/tensor";
import { DataError } from "./records.js";

function checkCount(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new DataError(`${name} must be an integer >= ${min}, got ${v}`);
}

/**
 * A permutation of 0..n-1 for `epoch` (Fisher-Yates on a generator keyed by (seed, epoch), never
 * by how many numbers were drawn before). Seeds and epochs are 32-bit unsigned integers.
 */
export function epochPermutation(seed: number, epoch: number, n: number): Int32Array {
  checkCount("n", n, 0);
  const rng = new Rng(dropoutKey({ seed, step: epoch, stream: "balora.data.order" }));
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/**
 * The batches of one epoch: example indices, `batchSize` at a time in the epoch's permutation order;
 * the last batch is smaller when n is not a multiple (or dropped with `dropLast`, as HF's dataloader_drop_last).
 */
export function batchIndices(
  seed: number,
  epoch: number,
  nExamples: number,
  batchSize: number,
  opts: { dropLast?: boolean } = {},
): number[][] {
  checkCount("batchSize", batchSize, 1);
  const p = epochPermutation(seed, epoch, nExamples);
  const batches: number[][] = [];
  for (let i = 0; i < p.length; i += batchSize) {
    if (opts.dropLast && i + batchSize > p.length) break;
    batches.push(Array.from(p.subarray(i, Math.min(i + batchSize, p.length))));
  }
  return batches;
}

/** Batches per epoch (what a step count is computed from). */
export const batchesPerEpoch = (nExamples: number, batchSize: number, dropLast = false): number =>
  dropLast ? Math.floor(nExamples / batchSize) : Math.ceil(nExamples / batchSize);

/**
 * Where optimizer step `step` (0-based, `gradAccum` batches each) starts: its epoch and the index of
 * its first batch in that epoch, so a resumed run can skip straight to it.
 */
export function stepPosition(
  step: number,
  nExamples: number,
  batchSize: number,
  gradAccum = 1,
  dropLast = false,
): { epoch: number; batch: number } {
  checkCount("step", step, 0);
  checkCount("gradAccum", gradAccum, 1);
  const perEpoch = batchesPerEpoch(nExamples, batchSize, dropLast);
  if (perEpoch === 0) throw new DataError(`no batch of ${batchSize} fits in ${nExamples} examples`);
  const stepsPerEpoch = Math.ceil(perEpoch / gradAccum);
  return { epoch: Math.floor(step / stepsPerEpoch), batch: (step % stepsPerEpoch) * gradAccum };
}
