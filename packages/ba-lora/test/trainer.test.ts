// The trainer's semantics against formulas written out here (HF schedules with warmup, λ schedules on
// completed steps), accumulation equivalence, non-finite steps skipped, and a checkpoint round trip.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { injectAdapter } from "@balora/lora";
import { type CausalLM, loadModel, Tokenizer } from "@balora/models";
import { BaLoraLoss, resolveConfig } from "@balora/regularizers";
import * as T from "@balora/tensor";
import { describe, expect, it } from "vitest";
import { onCpu, testBackend } from "./helpers.js";
import { buildInstructionDataset, collateCausal, padTokenIdOf } from "../src/data/instruction.js";
import { ALPACA_COT_PROMPT } from "../src/data/prompt.js";
import { parseRecords } from "../src/data/records.js";
import { batchLoss, batchTensors, fusedHeadOf } from "../src/train/batch-loss.js";
import { checkpointFiles, restoreCheckpoint } from "../src/train/checkpoint.js";
import { regularizersConfig, resolveSettings, type TrainSettings } from "../src/train/config.js";
import { type StepRow, Trainer, TrainingError } from "../src/train/trainer.js";

const asset = (p: string) => fileURLToPath(new URL(`../assets/${p}`, import.meta.url));
const MODEL = asset("demo-model");
const records = parseRecords(readFileSync(asset("demo-data/train.jsonl"), "utf8"), "train.jsonl").slice(0, 24);
const cpu = T.cpuBackend();

async function setup(over: Partial<TrainSettings>, opts: { injectNonFinite?: (s: number) => boolean; backend?: T.Backend } = {}) {
  const settings = resolveSettings({ lr: 2e-3, batch_size: 4, max_steps: 5, template: ALPACA_COT_PROMPT, save_steps: 0, ...over });
  const model = (await loadModel(MODEL, { backend: opts.backend ?? cpu })) as CausalLM;
  const tokenizer = await Tokenizer.fromDir(MODEL);
  const ds = buildInstructionDataset(records, tokenizer, { template: settings.template!, maxLength: settings.max_length });
  injectAdapter(
    model,
    {
      r: 4,
      lora_alpha: 8,
      target_modules: ["q_proj", "v_proj", "down_proj"],
      init_lora_weights: settings.init === "lora" ? true : "pissa",
    },
    { seed: 3 },
  );
  const warnings: string[] = [];
  const loss = new BaLoraLoss(resolveConfig(regularizersConfig(settings)), { warn: (m) => warnings.push(m) });
  const trainer = new Trainer({
    model,
    examples: ds.examples,
    padTokenId: padTokenIdOf(tokenizer),
    settings,
    loss,
    warn: (m) => warnings.push(m),
    injectNonFinite: opts.injectNonFinite,
  });
  return { trainer, model, warnings, examples: ds.examples, padTokenId: padTokenIdOf(tokenizer) };
}

async function params(model: T.Module): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [n, t] of model.namedTrainableParameters()) out[n] = Array.from(await t.data());
  return out;
}

const maxRelDiff = (a: Record<string, number[]>, b: Record<string, number[]>) => {
  let worst = 0;
  for (const k of Object.keys(a)) {
    const scale = Math.max(...a[k].map(Math.abs), 1e-12);
    for (let i = 0; i < a[k].length; i++) worst = Math.max(worst, Math.abs(a[k][i] - b[k][i]) / scale);
  }
  return worst;
};

async function run(trainer: Trainer, steps = trainer.totalSteps - trainer.step): Promise<StepRow[]> {
  const rows: StepRow[] = [];
  for (let i = 0; i < steps; i++) rows.push(await trainer.trainStep());
  return rows;
}

describe("Trainer", () => {
  it("learning rates follow HF's cosine schedule with ceil(ratio·total) warmup; λs use completed steps", async () => {
    const { trainer } = await setup({ max_steps: 10, warmup_ratio: 0.25, scheduler: "cosine" });
    const rows = await run(trainer);
    const warmup = Math.ceil(0.25 * 10); // 3
    rows.forEach((row, s) => {
      const mult = s < warmup ? s / warmup : 0.5 * (1 + Math.cos((Math.PI * (s - warmup)) / (10 - warmup)));
      expect(row.lr).toBeCloseTo(2e-3 * mult, 15);
      expect(row.step).toBe(s + 1);
      // iclr2026: λ1 cosine to 0.1·λ1; λ2 = λ3 = 0 for s < ⌊0.2·10⌋ = 2, then (s − 2)/R over R = max(⌊0.05·10⌋, 1) = 1 step.
      expect(row.lambda1).toBeCloseTo(0.025 * (0.1 + 0.9 * 0.5 * (1 + Math.cos((Math.PI * s) / 10))), 15);
      const ramp = Math.min(1, Math.max(0, s - 2)); // (s − 2)/1, capped at 1
      expect(row.lambda2).toBeCloseTo(0.005 * ramp, 15);
      expect(row.lambda3).toBeCloseTo(0.005 * ramp, 15);
      expect(row.epoch).toBeCloseTo((s + 1) / 6, 15); // 24 examples / batch 4 = 6 steps per epoch
      expect(row.loss).toBeCloseTo(
        Number(row.task_loss) +
          Number(row.lambda1) * Number(row.consistency) +
          Number(row.lambda2) * Number(row.diversity) +
          Number(row.lambda3) * Number(row.svd),
        10,
      );
    });
    expect(rows[0].lr).toBe(0); // the first step of a warmed-up run does not move the weights
    expect(rows[0].consistency).toBeCloseTo(0, 12); // PiSSA: the teacher is the student at step 0
    trainer.dispose();
  });

  it("batch 4 × accumulation 1 and batch 2 × accumulation 2 give the same updates (token terms over the accumulated batch)", async () => {
    // The SVD term is per micro-batch by definition (averaged over them), so it is off here: λ3 = 0.
    const a = await setup({ batch_size: 4, grad_accum: 1, max_steps: 3, warmup_ratio: 0, lambda3: 0, lambda2: 0.01 });
    const b = await setup({ batch_size: 2, grad_accum: 2, max_steps: 3, warmup_ratio: 0, lambda3: 0, lambda2: 0.01 });
    const ra = await run(a.trainer);
    const rb = await run(b.trainer);
    for (let i = 0; i < 3; i++)
      for (const k of ["loss", "task_loss", "consistency", "diversity", "grad_norm", "tokens"])
        expect(Math.abs(Number(ra[i][k]) - Number(rb[i][k]))).toBeLessThan(1e-9 * Math.max(1, Math.abs(Number(ra[i][k]))));
    expect(maxRelDiff(await params(a.model), await params(b.model))).toBeLessThan(1e-9);
    a.trainer.dispose();
    b.trainer.dispose();
  });

  it("evaluate: the task CE over every supervised token of the eval data (HF's causal loss, token-weighted), no update", async () => {
    const { trainer, model, examples, padTokenId } = await setup({ batch_size: 3, lambda1: 0.5 });
    await trainer.trainStep();
    const before = await params(model);
    const evalSet = examples.slice(0, 7); // batches of 3, 3 and 1
    const e = await trainer.evaluate(evalSet);
    let sum = 0;
    let count = 0;
    for (let i = 0; i < evalSet.length; i += 3) {
      const batch = collateCausal(evalSet.slice(i, i + 3), padTokenId);
      const { ids, mask, labels } = batchTensors(batch, cpu);
      model.eval();
      const ce = await T.noGrad(() => model.loss(model.forward(ids, { attentionMask: mask }), labels)).item();
      model.train();
      sum += ce * batch.supervisedTokens;
      count += batch.supervisedTokens;
    }
    expect(Math.abs(e.eval_loss - sum / count)).toBeLessThan(1e-9);
    expect(e.eval_examples).toBe(7);
    expect(e.eval_accuracy).toBeUndefined();
    expect(await params(model)).toEqual(before);
    expect(model.training).toBe(true);
    trainer.dispose();
  });

  it("gradient checkpointing recomputes each layer in the backward pass and gives the same updates", async () => {
    const plain = await setup({ max_steps: 2, warmup_ratio: 0, lora_dropout: 0.1 });
    const recomputed = await setup({ max_steps: 2, warmup_ratio: 0, lora_dropout: 0.1, gradient_checkpointing: true });
    expect(recomputed.model.model.gradientCheckpointing).toBe(true);
    const a = await run(plain.trainer);
    const b = await run(recomputed.trainer);
    a.forEach((row, i) => expect(b[i].grad_norm).toBeCloseTo(Number(row.grad_norm), 12));
    expect(maxRelDiff(await params(plain.model), await params(recomputed.model))).toBeLessThan(1e-12);
    plain.trainer.dispose();
    recomputed.trainer.dispose();
  });

  it("a non-finite loss skips the update (weights and optimizer state unchanged) and 5 in a row stop the run", async () => {
    const bad = new Set([1]);
    const { trainer, model, warnings } = await setup({ max_steps: 8, warmup_ratio: 0 }, { injectNonFinite: (s) => bad.has(s) });
    await trainer.trainStep();
    const before = await params(model);
    const stepsBefore = trainer.optimizer.stepCount;
    const row = await trainer.trainStep();
    expect(row.skipped).toBe(true);
    expect(row.skipped_steps).toBe(1);
    expect(Number.isNaN(Number(row.loss))).toBe(true);
    expect(await params(model)).toEqual(before);
    expect(trainer.optimizer.stepCount).toBe(stepsBefore);
    expect(warnings.some((w) => /step 2: the loss is not finite; the update was skipped/.test(w))).toBe(true);
    const next = await trainer.trainStep(); // recovers
    expect(next.skipped).toBeUndefined();
    expect(trainer.optimizer.stepCount).toBe(stepsBefore + 1);
    for (const s of [3, 4, 5, 6, 7]) bad.add(s);
    await expect(run(trainer)).rejects.toThrow(TrainingError);
    expect(trainer.skippedSteps).toBe(6);
    trainer.dispose();
  });

  it("a checkpoint restored into a fresh trainer continues exactly as the uninterrupted run", async () => {
    // On WebGPU (f32 everywhere) bit for bit; the float64 CPU backend rounds the checkpoint to f32 (as peft's files are).
    const backend = await testBackend();
    const settings = { max_steps: 6, warmup_ratio: 0.2, lora_dropout: 0.1 } as const;
    const whole = await setup(settings, { backend });
    const rowsWhole = await run(whole.trainer);
    const first = await setup(settings, { backend });
    const rowsFirst = await run(first.trainer, 3);
    const files = await checkpointFiles(first.trainer, rowsFirst.map((r) => `${JSON.stringify(r)}\n`).join(""));
    first.trainer.dispose();
    const second = await setup(settings, { backend });
    const metrics = await restoreCheckpoint(second.trainer, Object.fromEntries(files));
    expect(metrics.trim().split("\n")).toHaveLength(3);
    expect(second.trainer.step).toBe(3);
    const rowsRest = await run(second.trainer);
    const timing = new Set(["tokens_per_s", "elapsed_s"]);
    const tol = onCpu ? 1e-6 : 0;
    [...rowsFirst, ...rowsRest].forEach((row, i) => {
      for (const [k, v] of Object.entries(row))
        if (!timing.has(k))
          expect(Math.abs(Number(v) - Number(rowsWhole[i][k]))).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(Number(v))));
    });
    expect(maxRelDiff(await params(second.model), await params(whole.model))).toBeLessThanOrEqual(tol);
    whole.trainer.dispose();
    second.trainer.dispose();
  });
});

describe("batchLoss", () => {
  it("the fused head on the supervised rows alone gives the materialised path's loss, terms and gradients", async () => {
    // iclr2026 at step 50 of 100 (every λ on), one batch with prompt and padding rows: the fused path
    // packs the supervised rows before the LM head; the materialised path forms logits on every row.
    const { model, examples, padTokenId } = await setup({ preset: "iclr2026" });
    const batch = collateCausal(examples.slice(0, 4), padTokenId);
    expect(batch.supervisedTokens).toBeLessThan(batch.batchSize * (batch.seqLength - 1) * 0.8);
    const loss = new BaLoraLoss(resolveConfig({ preset: "iclr2026" }), { warn: () => {} });
    const once = async (head: ReturnType<typeof fusedHeadOf>) => {
      const r = batchLoss(model, loss, batch, { step: 50, totalSteps: 100, numItems: batch.supervisedTokens, head });
      T.backward(r.loss);
      const values = { loss: await r.loss.item(), task: await r.task.item() } as Record<string, number>;
      for (const [k, t] of Object.entries(r.terms)) values[k] = await t.item();
      BaLoraLoss.dispose(r);
      const grads = Object.fromEntries(
        await Promise.all(model.namedTrainableParameters().map(async ([n, p]) => [n, Array.from(await p.grad!.data())] as const)),
      );
      for (const [, p] of model.namedTrainableParameters()) {
        p.grad?.dispose();
        p.grad = null;
      }
      return { values, grads };
    };
    const head = fusedHeadOf(model);
    expect(head).not.toBeNull();
    const packed = await once(head);
    const materialised = await once(null);
    expect(Object.keys(packed.values).sort()).toEqual(["consistency", "diversity", "loss", "svd", "task"]);
    for (const k of Object.keys(materialised.values))
      expect(Math.abs(packed.values[k] - materialised.values[k]), k).toBeLessThan(1e-9 * Math.max(1, Math.abs(materialised.values[k])));
    expect(maxRelDiff(packed.grads, materialised.grads)).toBeLessThan(1e-8);
  });
});
