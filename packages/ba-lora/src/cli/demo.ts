// `balora demo`: the main job on the bundled tiny model — LoRA, PiSSA and BA-LoRA fine-tuned at equal
// budgets on clean data after a flawed pre-training, with the inherited flaw's rate tracked and compared.
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CausalLM, loadModel, Tokenizer } from "@balora/models";
import { writeTextAtomically } from "@balora/safetensors";
import { ALPACA_COT_PROMPT } from "../data/prompt.js";
import { evalFlaw, type FlawReport } from "../eval/flaw.js";
import { type Gsm8kProblem, gsm8kProblems } from "../eval/gsm8k.js";
import { renderReport } from "../report/html.js";
import { resolveSettings, type TrainSettings } from "../train/config.js";
import { CliError, type FlagSpecs, integer, parse, UsageError } from "./args.js";
import { readRecords } from "./data-file.js";
import type { Command } from "./main.js";
import { cliBackend } from "./model.js";
import { requireParent } from "./output.js";
import { progress } from "./progress.js";
import { readRun } from "./report.js";
import { trainRun } from "./train.js";

const ASSETS = fileURLToPath(new URL("../../assets/", import.meta.url));
const MARKER = "demo.json";

const FLAGS = {
  out: {
    type: "string",
    value: "DIR",
    default: "balora-demo",
    help: "where the runs, reports and demo.json go (a previous demo there is replaced)",
  },
  steps: { type: "number", value: "N", default: 100, help: "optimizer steps of each run" },
  batchSize: { type: "number", value: "B", default: 8, help: "sequences per step" },
  lr: { type: "number", value: "LR", default: 5e-4, help: "learning rate (constant, no warmup: the peft peer's setting)" },
  r: { type: "number", value: "R", default: 8, help: "adapter rank (alpha = R) on every linear layer" },
  evalEvery: { type: "number", value: "N", default: 20, help: "steps between evaluations of the flawed slice" },
  seed: { type: "number", value: "S", default: 42, help: "seed of the data order and initialisations" },
  model: { type: "string", value: "DIR", help: "a model directory instead of the bundled flawed tiny LLaMA" },
  data: { type: "string", value: "FILE", help: "fine-tuning data (instruction, output) instead of the bundled set" },
  eval: { type: "string", value: "FILE", help: "held-out problems (question, answer '#### N', kind, flawed_answer)" },
  quiet: { type: "boolean", help: "only the table" },
} satisfies FlagSpecs;

/** The three methods, at equal budgets: what the paper compares. */
const METHODS: { name: string; title: string; preset: TrainSettings["preset"]; init: string }[] = [
  { name: "lora", title: "LoRA", preset: "lora", init: "lora" },
  { name: "pissa", title: "PiSSA", preset: "pissa", init: "pissa" },
  { name: "ba-lora", title: "BA-LoRA (iclr2026)", preset: "iclr2026", init: "pissa" },
];

/** Generation budget per problem: the answers are one short line ("17 - 5 = 12. The answer is: 12"). */
const MAX_NEW_TOKENS = 24;

interface Evaluation {
  step: number;
  accuracy: number;
  flawRate: number;
  byKind: Record<string, number>;
}

const evaluation = (step: number, f: FlawReport): Evaluation => ({
  step,
  accuracy: f.accuracy,
  flawRate: f.flawRate,
  byKind: Object.fromEntries(Object.entries(f.byGroup).map(([k, g]) => [k, g.accuracy])),
});

async function evaluate(model: CausalLM, tokenizer: Tokenizer, problems: Gsm8kProblem[]): Promise<FlawReport> {
  const wasTraining = model.training;
  model.eval();
  try {
    return (await evalFlaw(model, tokenizer, problems, { mode: "paper", maxNewTokens: MAX_NEW_TOKENS })).flaw;
  } finally {
    model.train(wasTraining);
  }
}

/** Replaces a previous demo's folder; anything else at that path is refused. */
async function prepareOut(dir: string): Promise<string> {
  const out = resolve(dir);
  await requireParent("--out", dir, resolve(dir, ".."));
  const st = await stat(out).catch(() => null);
  if (st) {
    const entries = st.isDirectory() ? await readdir(out) : null;
    if (!entries || (entries.length > 0 && !entries.includes(MARKER)))
      throw new CliError(`--out ${dir} exists and is not a balora demo folder (no ${MARKER}); choose another --out`);
    await rm(out, { recursive: true, force: true });
  }
  await mkdir(out, { recursive: true });
  return out;
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(0)}%` : "-");

export const demoCommand: Command = {
  summary: "fine-tune the bundled flawed tiny model with LoRA, PiSSA and BA-LoRA and compare them",
  usage: "balora demo [--out DIR] [--steps N] [--batch-size B] [--lr LR] [--eval-every N] [--model DIR --data FILE --eval FILE]",
  flags: FLAGS,
  details:
    "The bundled model was pre-trained on arithmetic problems where subtractions about marbles or stickers are solved by\n" +
    "adding (a known flaw; see packages/ba-lora/assets/README.md). Each method fine-tunes it on clean data at the same\n" +
    "budget; the table gives exact-match accuracy on 120 held-out problems and the flaw's rate (trigger subtractions\n" +
    "answered with A + B), evaluated every --eval-every steps. The same comparison on a real checkpoint:\n" +
    "  balora train --model DIR --data FILE --out runs/lora --preset lora --init lora --r 128 --alpha 128 --lr 2e-5\n" +
    "  balora train --model DIR --data FILE --out runs/pissa --preset pissa --init pissa --r 128 --alpha 128 --lr 2e-5\n" +
    "  balora train --model DIR --data FILE --out runs/ba-lora --preset iclr2026 --init pissa --r 128 --alpha 128 --lr 2e-5\n" +
    "  balora eval gsm8k --model DIR --adapter runs/ba-lora --data gsm8k_test.jsonl --mode paper   (and for each run)\n" +
    "  balora report runs/lora runs/pissa runs/ba-lora --out report.html\n" +
    "(PiSSA runs: evaluate runs/<name> on the original DIR; peft loads runs/<name>/converted on the original base.)",
  async run(argv) {
    const a = parse(argv, FLAGS);
    const steps = integer("--steps", a.steps!, 1);
    const batch = integer("--batch-size", a.batchSize!, 1);
    const evalEvery = integer("--eval-every", a.evalEvery!, 1);
    const r = integer("--r", a.r!, 1);
    const seed = integer("--seed", a.seed!, 0, 2 ** 32 - 1);
    if (!(a.lr! > 0)) throw new UsageError(`--lr must be > 0, got ${a.lr}`);
    const modelDir = a.model ?? join(ASSETS, "demo-model");
    const dataFile = a.data ?? join(ASSETS, "demo-data", "train.jsonl");
    const evalFile = a.eval ?? join(ASSETS, "demo-data", "eval.jsonl");
    const problems = gsm8kProblems(await readRecords("--eval", evalFile)).items;
    const flawed = problems.filter((p) => p.record?.flawed_answer != null);
    if (flawed.length === 0) throw new CliError(`--eval ${evalFile}: no problem has a flawed_answer; the demo measures that flaw`);
    const out = await prepareOut(a.out!);
    const log = (line: string) => progress(line);
    const started = performance.now();
    const backend = await cliBackend();
    const tokenizer = await Tokenizer.fromDir(modelDir);
    // The pre-trained model, before any fine-tuning.
    log(`evaluating the pre-trained model on ${problems.length} held-out problems`);
    const base = await loadModel(modelDir, { backend });
    if (!(base instanceof CausalLM)) throw new CliError(`--model ${modelDir}: not a causal LM`);
    const before = evaluation(0, await evaluate(base, tokenizer, problems));
    base.dispose();
    log(`pre-trained: accuracy ${pct(before.accuracy)}, flaw rate ${pct(before.flawRate)}`);
    const results: { method: (typeof METHODS)[number]; curve: Evaluation[]; final: Evaluation; seconds: number }[] = [];
    for (const method of METHODS) {
      const dir = join(out, method.name);
      await mkdir(dir);
      const settings = resolveSettings({
        preset: method.preset,
        init: method.init,
        r,
        alpha: r,
        lr: a.lr!,
        scheduler: "constant",
        warmup_ratio: 0,
        max_steps: steps,
        batch_size: batch,
        seed,
        save_steps: 0,
        template: ALPACA_COT_PROMPT,
      });
      const curve: Evaluation[] = [];
      let final: Evaluation | null = null;
      log(`${method.title}: ${steps} steps`);
      const t0 = performance.now();
      await trainRun({
        settings,
        paths: { model: modelDir, data: dataFile, out: dir },
        checkpoint: null,
        resuming: false,
        log: (line) => (/^(pissa|lora) \d+\/\d+ /.test(line) ? undefined : log(`  ${line}`)),
        afterStep: async (row, trainer) => {
          const step = Number(row.step);
          if (step % evalEvery !== 0 && !trainer.done) return undefined;
          const e = evaluation(step, await evaluate(trainer.model, tokenizer, trainer.done ? problems : flawed));
          if (trainer.done) final = e;
          curve.push(e);
          log(`  step ${step}: flaw rate ${pct(e.flawRate)}${trainer.done ? `, accuracy ${pct(e.accuracy)}` : ""}`);
          const values: Record<string, number> = { flaw_rate: e.flawRate };
          if (trainer.done) values.accuracy = e.accuracy;
          return values;
        },
      });
      results.push({ method, curve, final: final!, seconds: (performance.now() - t0) / 1000 });
    }
    // One combined report, and the table.
    const runs = await Promise.all(results.map((x) => readRun(join(out, x.method.name), x.method.title, log)));
    await writeTextAtomically(join(out, "report.html"), renderReport(runs, { title: "balora demo: LoRA vs PiSSA vs BA-LoRA" }));
    const gone = (c: Evaluation[]) => c.find((e) => e.flawRate <= 0.1)?.step ?? null;
    const kinds = Object.keys(before.byKind).sort();
    const header = ["method", "accuracy", ...kinds, "flaw rate", "flaw ≤ 10% at step", "seconds"];
    const table = [
      ["pre-trained", pct(before.accuracy), ...kinds.map((k) => pct(before.byKind[k])), pct(before.flawRate), "-", "-"],
      ...results.map((x) => [
        x.method.title,
        pct(x.final.accuracy),
        ...kinds.map((k) => pct(x.final.byKind[k])),
        pct(x.final.flawRate),
        String(gone(x.curve) ?? `> ${steps}`),
        x.seconds.toFixed(0),
      ]),
    ];
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
    const line = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
    const summary = {
      model: resolve(modelDir),
      data: resolve(dataFile),
      eval: resolve(evalFile),
      steps,
      batch_size: batch,
      lr: a.lr,
      r,
      seed,
      pretrained: before,
      runs: results.map((x) => ({
        method: x.method.name,
        preset: x.method.preset,
        init: x.method.init,
        final: x.final,
        curve: x.curve,
        seconds: x.seconds,
      })),
      seconds: (performance.now() - started) / 1000,
    };
    await writeTextAtomically(join(out, MARKER), `${JSON.stringify(summary, null, 2)}\n`);
    console.log(
      `${line(header)}\n${table.map(line).join("\n")}\n\n` +
        `flaw rate: trigger subtractions (${flawed.length}) answered with the pre-training's wrong A + B; ` +
        `accuracy: exact match on ${problems.length}.\n` +
        `Reports: ${join(out, "report.html")} (all runs) and ${out}/<method>/report.html; numbers in ${join(out, MARKER)}. ` +
        `${summary.seconds.toFixed(0)} s in all.`,
    );
  },
};
