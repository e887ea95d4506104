// Classification (NLU) training end to end against a PyTorch + peft golden (fixtures/nlu/golden_nlu.py: two
// float64 BA-LoRA steps on a peft SEQ_CLS adapter), the score head saved as peft does, eval rows, exact resume.
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { injectAdapter, loadAdapter, markInitialState } from "@balora/lora";
import { loadModel, type SequenceClassifier, Tokenizer } from "@balora/models";
import { BaLoraLoss, resolveConfig } from "@balora/regularizers";
import { parseSafetensors } from "@balora/safetensors";
import * as T from "@balora/tensor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildClassificationDataset } from "../src/data/classification.js";
import { parseRecords } from "../src/data/records.js";
import { regularizersConfig, resolveSettings, type TrainSettings } from "../src/train/config.js";
import { type StepRow, Trainer } from "../src/train/trainer.js";
import { modelFixture, run } from "./helpers.js";

const FIX = fileURLToPath(new URL("./fixtures/nlu/", import.meta.url));
const MODEL = modelFixture("llama-seqcls-f32");
const golden = JSON.parse(await readFile(join(FIX, "golden.json"), "utf8")) as {
  input_ids: number[][];
  settings: { tau: number; lambda1: number; lambda2: number; lambda3: number; k: number; lr: number; max_grad_norm: number };
  rows: Record<string, number>[];
  final_logits: number[][];
};
const labels = (await readFile(join(FIX, "data.jsonl"), "utf8"))
  .trim()
  .split("\n")
  .map((l) => JSON.parse(l).label as number);

let dir: string;
let config: string;
const TIMING = new Set(["tokens_per_s", "elapsed_s", "eval_runtime"]);
const rowsOf = async (out: string) =>
  (await readFile(join(out, "metrics.jsonl"), "utf8"))
    .trim()
    .split("\n")
    .map((l) => Object.fromEntries(Object.entries(JSON.parse(l) as Record<string, number>).filter(([k]) => !TIMING.has(k))));

async function tensorsOf(file: string): Promise<Record<string, number[]>> {
  const f = await parseSafetensors(await readFile(file));
  const out: Record<string, number[]> = {};
  for (const n of f.names) out[n] = Array.from((await f.readTensor(n)).data as Float32Array);
  return out;
}

const args = (out: string, ...extra: string[]) => [
  "train",
  "--model",
  MODEL,
  "--data",
  join(FIX, "data.jsonl"),
  "--adapter",
  join(FIX, "initial_adapter"),
  "--out",
  out,
  "--config",
  config,
  "--epochs",
  "2",
  "--batch-size",
  "4",
  "--lr",
  String(golden.settings.lr),
  "--scheduler",
  "constant",
  "--warmup-ratio",
  "0",
  "--max-grad-norm",
  String(golden.settings.max_grad_norm),
  "--lambda1",
  String(golden.settings.lambda1),
  "--lambda2",
  String(golden.settings.lambda2),
  "--lambda3",
  String(golden.settings.lambda3),
  "--k",
  String(golden.settings.k),
  "--tau",
  String(golden.settings.tau),
  "--save-steps",
  "1",
  "--eval-data",
  join(FIX, "data.jsonl"),
  "--quiet",
  ...extra,
];

/** CE and accuracy of logits [B, C] against labels, in float64. */
function ceAndAccuracy(logits: number[][]): { ce: number; accuracy: number } {
  let ce = 0;
  let hits = 0;
  logits.forEach((z, b) => {
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
    ce += lse - z[labels[b]];
    if (z.indexOf(m) === labels[b]) hits++;
  });
  return { ce: ce / logits.length, accuracy: hits / logits.length };
}

const reference = () => join(dir, "reference");

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "balora-nlu-"));
  config = join(dir, "constant-lambdas.json");
  // The golden's λs are constant (the presets ramp λ2 and λ3 in after 20% of the steps).
  const constant = { schedule: { kind: "constant" } };
  await writeFile(config, JSON.stringify({ regularizers: { consistency: constant, diversity: constant, svd: constant } }));
  const r = await run(args(reference()));
  expect(r.err).toBe("");
  expect(r.code).toBe(0);
}, 120_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("balora train on a sequence classifier", () => {
  it("matches the PyTorch/peft golden: every term, the grad norm and the final adapter (score head included)", async () => {
    const rows = (await rowsOf(reference())).filter((r) => r.loss !== undefined);
    expect(rows.map((r) => r.step)).toEqual([1, 2]);
    rows.forEach((row, i) => {
      for (const k of ["loss", "task_loss", "consistency", "diversity", "svd", "grad_norm"])
        expect(Math.abs(row[k] - golden.rows[i][k]), `step ${i + 1} ${k}: ${row[k]} vs ${golden.rows[i][k]}`).toBeLessThan(
          2e-5 * Math.max(1, Math.abs(golden.rows[i][k])),
        );
    });
    expect(rows[0].consistency).toBe(0); // the teacher is the initial adapter (and the initial score head)
    expect(rows[1].task_loss).toBeLessThan(rows[0].task_loss);
    const got = await tensorsOf(join(reference(), "adapter_model.safetensors"));
    const want = await tensorsOf(join(FIX, "golden-final.safetensors"));
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    expect(Object.keys(got)).toContain("base_model.model.score.weight");
    for (const k of Object.keys(want)) {
      const worst = Math.max(...want[k].map((v, i) => Math.abs(v - got[k][i])));
      expect(worst, k).toBeLessThan(1e-5); // lr 1e-2: a flipped Adam sign would be 2e-2
    }
  });

  it("writes peft's SEQ_CLS adapter config, eval rows after the steps that evaluate, and a report with them", async () => {
    const adapter = JSON.parse(await readFile(join(reference(), "adapter_config.json"), "utf8"));
    expect(adapter).toMatchObject({ task_type: "SEQ_CLS", modules_to_save: ["classifier", "score"], peft_type: "LORA", r: 4 });
    const initial = await tensorsOf(join(reference(), "initial_adapter", "adapter_model.safetensors"));
    const peftInitial = await tensorsOf(join(FIX, "initial_adapter", "adapter_model.safetensors"));
    expect(initial).toEqual(peftInitial);
    const all = await rowsOf(reference());
    expect(all.map((r) => [r.step, r.loss === undefined ? "eval" : "train"])).toEqual([
      [1, "train"],
      [1, "eval"],
      [2, "train"],
      [2, "eval"],
    ]);
    // The last eval row: the task loss and accuracy of the final adapter (the golden's final logits).
    const { ce, accuracy } = ceAndAccuracy(golden.final_logits);
    const last = all[3];
    expect(Math.abs(last.eval_loss - ce)).toBeLessThan(2e-5);
    expect(last.eval_accuracy).toBe(accuracy);
    expect(last.eval_examples).toBe(4);
    expect(last.epoch).toBe(2);
    // The first eval row is after step 1: its loss is the step-2 row's task loss (same data, same weights).
    expect(Math.abs(all[1].eval_loss - all[2].task_loss)).toBeLessThan(1e-6);
    const settings = JSON.parse(await readFile(join(reference(), "training_config.json"), "utf8"));
    expect(settings).toMatchObject({ task: "nlu", fields: ["text", "label"], eval_steps: null, eval_examples: 4 });
    expect(settings.eval_data).toBe(join(FIX, "data.jsonl"));
    const html = await readFile(join(reference(), "report.html"), "utf8");
    expect(html).toContain("2 steps");
    expect(html).toMatch(/last eval_accuracy<\/td><td>[0-9.]+/);
  });

  it("resumes exactly: a run killed after an eval row resumes from its checkpoint without duplicating rows", async () => {
    const out = join(dir, "resumed");
    await cp(reference(), out, { recursive: true });
    // As a kill during step 2 leaves it: checkpoint-1 complete, step 2's rows written, no final adapter.
    await rm(join(out, "checkpoint-2"), { recursive: true });
    for (const f of ["adapter_model.safetensors", "adapter_config.json", "report.html"]) await rm(join(out, f));
    const r = await run(["train", "--resume", out, "--quiet"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    // To 1e-6 (WebGPU: bit for bit; the float64 CPU backend rounds the checkpoint to f32, as peft's files are).
    const got = await rowsOf(out);
    const want = await rowsOf(reference());
    expect(got.map((row) => Object.keys(row).sort())).toEqual(want.map((row) => Object.keys(row).sort()));
    got.forEach((row, i) => {
      for (const [k, v] of Object.entries(row))
        expect(Math.abs(v - want[i][k]), `row ${i} ${k}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want[i][k])));
    });
    const a = await tensorsOf(join(out, "adapter_model.safetensors"));
    const b = await tensorsOf(join(reference(), "adapter_model.safetensors"));
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    for (const k of Object.keys(b)) b[k].forEach((v, i) => expect(Math.abs(a[k][i] - v)).toBeLessThanOrEqual(1e-6));
    expect((await readdir(out)).filter((n) => n.startsWith("checkpoint-")).sort()).toEqual(["checkpoint-1", "checkpoint-2"]);
  });

  it("creates a PiSSA adapter for the classifier itself, trains it and the score head; loss decreases", async () => {
    const out = join(dir, "pissa");
    const r = await run([
      "train",
      "--model",
      MODEL,
      "--data",
      join(FIX, "data.jsonl"),
      "--out",
      out,
      "--r",
      "4",
      "--alpha",
      "4",
      "--epochs",
      "6",
      "--batch-size",
      "2",
      "--lr",
      "5e-3",
      "--save-steps",
      "0",
      "--merge",
      "--quiet",
    ]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const rows = await rowsOf(out);
    expect(rows).toHaveLength(12);
    // --merge: a plain classifier directory whose logits are the base + adapter's (the trained score head inside).
    const cpu = T.cpuBackend();
    const ids = T.tensor([1, 327, 335, 348, 1, 325, 389, 0], [2, 4], { backend: cpu, dtype: "i32" });
    const merged = (await loadModel(join(out, "merged"), { backend: cpu })) as SequenceClassifier;
    const adapted = (await loadModel(MODEL, { backend: cpu })) as SequenceClassifier;
    await loadAdapter(adapted, out);
    const want = Array.from(await T.noGrad(() => adapted.forward(ids)).data());
    const got = Array.from(await T.noGrad(() => merged.forward(ids)).data());
    const plain = (await loadModel(MODEL, { backend: cpu })) as SequenceClassifier;
    const base = Array.from(await T.noGrad(() => plain.forward(ids)).data());
    expect(Math.max(...got.map((v, i) => Math.abs(v - want[i])))).toBeLessThan(1e-5);
    expect(Math.max(...base.map((v, i) => Math.abs(v - want[i])))).toBeGreaterThan(1e-3);
    const mean = (xs: Record<string, number>[]) => xs.reduce((a, x) => a + x.task_loss, 0) / xs.length;
    expect(mean(rows.slice(-4))).toBeLessThan(0.8 * mean(rows.slice(0, 4)));
    const adapter = JSON.parse(await readFile(join(out, "adapter_config.json"), "utf8"));
    expect(adapter).toMatchObject({ task_type: "SEQ_CLS", modules_to_save: ["classifier", "score"], init_lora_weights: "pissa" });
    const converted = await tensorsOf(join(out, "converted", "adapter_model.safetensors"));
    expect(Object.keys(converted)).toContain("base_model.model.score.weight");
  });

  it("mistakes: classification rows for a causal LM, an unknown class name, a missing --eval-data", async () => {
    const rows = join(dir, "cls.jsonl");
    await writeFile(rows, '{"text": "a b", "label": 0}\n');
    const causal = await run(["train", "--model", modelFixture("llama-f32"), "--data", rows, "--out", join(dir, "x1"), "--quiet"]);
    expect(causal.code).toBe(1);
    expect(causal.err.trim().split("\n")).toHaveLength(1);
    expect(causal.err).toMatch(/has classification rows \(text, label\) but --model .* is a LlamaForCausalLM \(causal LM\)/);
    const badLabel = join(dir, "bad-label.jsonl");
    await writeFile(badLabel, '{"text": "a b", "label": 0}\n{"text": "c", "label": "LABEL_9"}\n');
    const bad = await run(["train", "--model", MODEL, "--data", badLabel, "--out", join(dir, "x2"), "--quiet"]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/bad-label\.jsonl:2: field 'label' is 'LABEL_9', expected one of LABEL_0, LABEL_1, LABEL_2/);
    const missing = await run([
      "train",
      "--model",
      MODEL,
      "--data",
      rows,
      "--out",
      join(dir, "x3"),
      "--eval-data",
      join(dir, "nope.jsonl"),
    ]);
    expect(missing.code).not.toBe(0);
    expect(missing.err).toMatch(/--eval-data .*nope\.jsonl/);
    const steps = await run(["train", "--model", MODEL, "--data", rows, "--out", join(dir, "x5"), "--eval-steps", "2"]);
    expect(steps.code).toBe(2);
    expect(steps.err).toMatch(/--eval-steps needs --eval-data FILE/);
    const template = join(dir, "template.txt");
    await writeFile(template, "{instruction}");
    const tmpl = await run(["train", "--model", MODEL, "--data", rows, "--out", join(dir, "x4"), "--template", template]);
    expect(tmpl.code).toBe(1);
    expect(tmpl.err).toMatch(/--template is a prompt for instruction data; a classifier reads the text field as it is/);
    expect((await readdir(dir)).filter((n) => /^x\d$/.test(n))).toEqual([]);
  });
});

const TEXTS = ["one two", "three", "four five six seven", "eight nine", "ten", "eleven twelve thirteen", "a b c d e", "zero"];

/** A Trainer on the tiny classifier (CPU, float64): a random LoRA on q/v, the score head trained beside it. */
async function classifierTrainer(over: Partial<TrainSettings>) {
  const settings = resolveSettings({ lr: 5e-3, max_steps: 3, warmup_ratio: 0, save_steps: 0, ...over });
  const cpu = T.cpuBackend();
  const model = (await loadModel(MODEL, { backend: cpu })) as SequenceClassifier;
  const tokenizer = await Tokenizer.fromDir(MODEL);
  const rows = TEXTS.map((text, i) => JSON.stringify({ text, label: i % 3 })).join("\n");
  const ds = buildClassificationDataset(parseRecords(rows, "rows.jsonl"), tokenizer, { numLabels: 3 });
  injectAdapter(
    model,
    {
      r: 4,
      lora_alpha: 8,
      target_modules: ["q_proj", "v_proj"],
      init_lora_weights: false,
      task_type: "SEQ_CLS",
      modules_to_save: ["score"],
    },
    { seed: 3 },
  );
  markInitialState(model);
  const loss = new BaLoraLoss(resolveConfig({ ...regularizersConfig(settings), taskType: "nlu" }), { warn: () => {} });
  const trainer = new Trainer({ model, examples: ds.examples, padTokenId: model.config.padTokenId, settings, loss });
  return { trainer, model, examples: ds.examples };
}

const paramsOf = async (model: T.Module) => {
  const out: Record<string, number[]> = {};
  for (const [n, t] of model.namedTrainableParameters()) out[n] = Array.from(await t.data());
  return out;
};

describe("Trainer on a sequence classifier", () => {
  it("batch 4 × accumulation 1 and batch 2 × accumulation 2 give the same updates (CE and KL over the accumulated examples)", async () => {
    // Diversity (batch covariance) and SVD are per micro-batch by definition (averaged over them): off here.
    const over = { lambda1: 0.5, lambda2: 0, lambda3: 0, regularizers: { consistency: { schedule: { kind: "constant" as const } } } };
    const a = await classifierTrainer({ batch_size: 4, grad_accum: 1, ...over });
    const b = await classifierTrainer({ batch_size: 2, grad_accum: 2, ...over });
    expect(a.trainer.task).toBe("nlu");
    const ra: StepRow[] = [];
    const rb: StepRow[] = [];
    for (let i = 0; i < 3; i++) {
      ra.push(await a.trainer.trainStep());
      rb.push(await b.trainer.trainStep());
    }
    for (let i = 0; i < 3; i++)
      for (const k of ["loss", "task_loss", "consistency", "grad_norm", "tokens"])
        expect(Math.abs(Number(ra[i][k]) - Number(rb[i][k])), `step ${i + 1} ${k}`).toBeLessThan(
          1e-9 * Math.max(1, Math.abs(Number(ra[i][k]))),
        );
    expect(Number(ra[2].consistency)).toBeGreaterThan(0);
    const pa = await paramsOf(a.model);
    const pb = await paramsOf(b.model);
    expect(Object.keys(pa)).toContain("score.modules_to_save.default.weight");
    for (const k of Object.keys(pa)) pa[k].forEach((v, i) => expect(Math.abs(v - pb[k][i])).toBeLessThan(1e-9));
    // Evaluation: mean CE over the examples and the argmax accuracy, against the model's own forward and HF's loss.
    const e = await a.trainer.evaluate(a.examples);
    a.model.eval();
    const batch = a.trainer.collate(a.examples);
    const ids = T.tensor(batch.inputIds, [batch.batchSize, batch.seqLength], { backend: T.cpuBackend(), dtype: "i32" });
    const mask = T.tensor(batch.attentionMask, [batch.batchSize, batch.seqLength], { backend: T.cpuBackend(), dtype: "i32" });
    const logits = T.noGrad(() => a.model.forward(ids, { attentionMask: mask }));
    const labelsT = T.tensor(Int32Array.from(batch.labels), [batch.batchSize], { backend: T.cpuBackend(), dtype: "i32" });
    const ce = await T.noGrad(() => a.model.loss(logits, labelsT)).item();
    const z = Array.from(await logits.data());
    const hits = a.examples.filter((ex, i) => {
      const row = z.slice(3 * i, 3 * i + 3);
      return row.indexOf(Math.max(...row)) === ex.label;
    }).length;
    expect(Math.abs(e.eval_loss - ce)).toBeLessThan(1e-9);
    expect(e.eval_accuracy).toBe(hits / 8);
    a.trainer.dispose();
    b.trainer.dispose();
  }, 60_000);
});
