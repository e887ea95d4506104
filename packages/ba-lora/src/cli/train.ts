// `balora train`: the BA-LoRA run end to end at the Node edge — settings from flags and --config, causal-LM
// or classification data, the output folder, checkpoints written atomically, Ctrl-C and --resume, eval, report.
import { appendFile, mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import {
  forgetZeroInitialState,
  adapterFiles,
  addModulesToSave,
  injectAdapter,
  loadAdapter,
  loraLayers,
  markInitialState,
  mergeAndUnload,
  saveAdapter,
  savedModules,
  trainableReport,
} from "@balora/lora";
import { CausalLM, type LanguageModel, loadModel, type ModelConfig, SequenceClassifier, Tokenizer } from "@balora/models";
import { BaLoraLoss, resolveConfig } from "@balora/regularizers";
import { writeFiles, writeTextAtomically } from "@balora/safetensors";
import { buildClassificationDataset } from "../data/classification.js";
import { buildInstructionDataset, padTokenIdOf } from "../data/instruction.js";
import type { DataRecord } from "../data/records.js";
import { renderReport } from "../report/html.js";
import { parseMetrics } from "../report/metrics.js";
import { checkpointFiles, COMPLETE_FILE, METRICS_FILE, readCheckpointState, restoreCheckpoint } from "../train/checkpoint.js";
import {
  adapterConfigOf,
  DEFAULT_SETTINGS,
  evaluatesAt,
  fieldsOf,
  isDefaultFields,
  regularizersConfig,
  resolveSettings,
  SCHEDULERS,
  SEQ_CLS_MODULES,
  SETTING_KEYS,
  type TrainSettings,
} from "../train/config.js";
import { type StepRow, type TrainExample, Trainer } from "../train/trainer.js";
import { CliError, ExitRequest, type FlagSpecs, integer, kebab, parse, UsageError } from "./args.js";
import { onInterrupt, registerTemp, signalExitCode, unregisterTemp } from "./cleanup.js";
import { readRecords, readTemplate } from "./data-file.js";
import { requireDir, requireFile } from "./inputs.js";
import type { Command } from "./main.js";
import { checkAdapterDir, cliBackend, INITIAL_ADAPTER_DIR, readModelConfig, requireLongestFits, writeModelDir } from "./model.js";
import { OVERWRITE_FLAG, planOutput, writeDirOutput } from "./output.js";
import { isQuiet, progress } from "./progress.js";
import { loadPlugins } from "./plugins.js";
import { readRunConfig } from "./run-config.js";

const D = DEFAULT_SETTINGS;
const setting = (help: string, type: "string" | "number", value: string, shown: string | number) =>
  ({ type, help, value, shownDefault: shown }) as const;

const FLAGS = {
  model: { type: "string", value: "DIR", help: "Hugging Face model directory (config.json, *.safetensors, tokenizer.json)" },
  data: { type: "string", value: "FILE", help: "training data: JSONL or a JSON array of objects" },
  out: { type: "string", value: "DIR", help: "output folder (adapter, metrics.jsonl, checkpoints, report.html)" },
  config: { type: "string", value: "FILE.json", help: "settings as JSON (the keys of training_config.json); flags override it" },
  adapter: { type: "string", value: "DIR", help: "start from this peft adapter (e.g. balora init's pissa_init beside the residual model)" },
  init: setting(
    "create the adapter in memory: pissa, pissa_niter_N or lora",
    "string",
    "pissa|pissa_niter_N|lora",
    "pissa (lora with --preset lora)",
  ),
  r: setting("adapter rank", "number", "R", D.r),
  alpha: setting("lora_alpha: the adapter is scaled by A / R", "number", "A", D.alpha),
  target: setting("layers to adapt: comma-separated names (q_proj,v_proj) or all-linear", "string", "LIST", "all-linear"),
  loraDropout: setting("dropout on the adapter's input", "number", "P", D.lora_dropout),
  preset: setting("regularizers: iclr2026 (BA-LoRA), v5, lora or pissa (no regularizer)", "string", "NAME", D.preset),
  plugin: { type: "string", multiple: true, value: "NAME", help: "load a regularizer package (repeatable)" },
  lambda1: setting("consistency weight λ1", "number", "X", "the preset's"),
  lambda2: setting("diversity weight λ2", "number", "X", "the preset's"),
  lambda3: setting("SVD weight λ3", "number", "X", "the preset's"),
  k: setting("top-k singular values of the SVD term", "number", "K", "the preset's"),
  tau: setting("consistency temperature τ", "number", "T", "the preset's"),
  topKEntropy: setting("diversity: entropy of the top-k renormalised distribution (0: full vocabulary)", "number", "K", "the preset's"),
  maskMode: setting("which logits the regularizers count: shifted, unshifted or none", "string", "MODE", "the preset's"),
  fields: setting(
    "the data fields: query,response (causal LM) or text,label (classifier)",
    "string",
    "A,B",
    "instruction,output (a classifier: text,label)",
  ),
  template: { type: "string", value: "FILE", help: "prompt template ({instruction} and other {field}s); none: the paper's Alpaca prompt" },
  maxLength: setting("tokens per sequence (BOS, prompt and response + EOS), longer ones are cut", "number", "N", D.max_length),
  skipInvalid: { type: "boolean", help: "count and skip invalid data rows instead of failing" },
  lr: setting("peak learning rate", "number", "LR", D.lr),
  epochs: setting("passes over the data (unless --max-steps)", "number", "N", D.epochs),
  maxSteps: setting("optimizer steps (overrides --epochs)", "number", "N", "epochs × steps per epoch"),
  batchSize: setting("sequences per micro-batch", "number", "B", D.batch_size),
  gradAccum: setting("micro-batches per optimizer step", "number", "K", D.grad_accum),
  scheduler: setting(`learning-rate schedule: ${SCHEDULERS.join(", ")} (HF's, with warmup)`, "string", "NAME", D.scheduler),
  warmupRatio: setting("warmup steps = ceil(ratio × total steps)", "number", "R", D.warmup_ratio),
  weightDecay: setting("AdamW's decoupled weight decay", "number", "W", D.weight_decay),
  maxGradNorm: setting("clip the global gradient norm to this (0: no clipping)", "number", "N", D.max_grad_norm),
  seed: setting("seed of the data order, adapter initialisation and dropout", "number", "S", D.seed),
  saveSteps: setting("a checkpoint every N optimizer steps (0: only at the end)", "number", "N", D.save_steps),
  saveTotalLimit: setting("keep only the newest K checkpoints", "number", "K", "all"),
  evalData: {
    type: "string",
    value: "FILE",
    help: "evaluation data (the --data format): eval_loss (and eval_accuracy) rows in metrics.jsonl",
  },
  evalSteps: setting("evaluate every N optimizer steps (0: only at the end); always at the end", "number", "N", "--save-steps"),
  gradientCheckpointing: { type: "boolean", help: "recompute each decoder layer in the backward pass (less memory, same updates)" },
  resume: { type: "string", value: "DIR", help: "continue a run: its --out folder (latest complete checkpoint) or a checkpoint-N folder" },
  merge: { type: "boolean", help: "also write the merged model (base + adapter) to OUT/merged" },
  overwrite: OVERWRITE_FLAG,
  quiet: { type: "boolean", help: "no progress output" },
} satisfies FlagSpecs;

/** Flags that are settings, by their training_config.json key. */
const SETTING_FLAGS: Record<string, keyof TrainSettings> = {
  init: "init",
  adapter: "adapter",
  r: "r",
  alpha: "alpha",
  target: "target",
  loraDropout: "lora_dropout",
  preset: "preset",
  lambda1: "lambda1",
  lambda2: "lambda2",
  lambda3: "lambda3",
  k: "k",
  tau: "tau",
  topKEntropy: "top_k_entropy",
  maskMode: "mask_mode",
  fields: "fields",
  maxLength: "max_length",
  skipInvalid: "skip_invalid",
  lr: "lr",
  epochs: "epochs",
  maxSteps: "max_steps",
  batchSize: "batch_size",
  gradAccum: "grad_accum",
  scheduler: "scheduler",
  warmupRatio: "warmup_ratio",
  weightDecay: "weight_decay",
  maxGradNorm: "max_grad_norm",
  seed: "seed",
  saveSteps: "save_steps",
  saveTotalLimit: "save_total_limit",
  evalData: "eval_data",
  evalSteps: "eval_steps",
  gradientCheckpointing: "gradient_checkpointing",
  plugin: "plugins",
};

/** Keys of training_config.json besides the settings (what the run was given and what it derived). */
const RUN_KEYS = [
  "model",
  "data",
  "task",
  "balora_version",
  "examples",
  "eval_examples",
  "total_steps",
  "warmup_steps",
  "regularizers_effective",
];

export const CONFIG_FILE = "training_config.json";
const CHECKPOINT_RE = /^checkpoint-(\d+)$/;

export interface TrainPaths {
  model: string;
  data: string;
  out: string;
}

export interface TrainRunOptions {
  settings: TrainSettings;
  paths: TrainPaths;
  /** A checkpoint folder to continue from (null: a fresh run, or a resumed one without a checkpoint yet). */
  checkpoint: string | null;
  /** The run's folder exists already (resume): keep its files. */
  resuming: boolean;
  merge?: boolean;
  /** After each step: extra values for the row (written as `eval_<key>`), e.g. a periodic evaluation. */
  afterStep?: (row: StepRow, trainer: Trainer<CausalLM>) => Promise<Record<string, number> | undefined>;
  /** Test hook: make a step's loss non-finite. */
  injectNonFinite?: (step: number) => boolean;
  /** Progress lines (default: stderr via `progress`). */
  log?: (line: string) => void;
  /** Called once the run's folder holds its settings and initial adapter, right before the first step. */
  onStarted?: () => void;
}

export interface TrainRunResult {
  out: string;
  /** One row per optimizer step. */
  rows: StepRow[];
  /** The evaluation rows (`step`, `epoch`, `eval_*`), when --eval-data was given. */
  evalRows: StepRow[];
  steps: number;
  seconds: number;
  pissa: boolean;
  trainable: string;
}

/** Directories `checkpoint-N` of a run with their completeness, newest last. */
async function checkpoints(out: string): Promise<{ step: number; dir: string; complete: boolean }[]> {
  const names = await readdir(out).catch(() => [] as string[]);
  const found: { step: number; dir: string; complete: boolean }[] = [];
  for (const n of names) {
    const m = CHECKPOINT_RE.exec(n);
    if (!m) continue;
    const dir = join(out, n);
    const complete = await stat(join(dir, COMPLETE_FILE)).then(
      () => true,
      () => false,
    );
    found.push({ step: Number(m[1]), dir, complete });
  }
  return found.sort((a, b) => a.step - b.step);
}

/** Loads the model, the data and the adapter, and runs (or continues) training; the library form of `balora train`. */
export async function trainRun(o: TrainRunOptions): Promise<TrainRunResult> {
  const log = o.log ?? progress;
  const s = o.settings;
  const { out } = o.paths;
  const cfg = await readModelConfig(o.paths.model);
  const task = cfg.head === "sequence-classification" ? "nlu" : "nlg";
  if (task === "nlu" && cfg.numLabels < 2)
    throw new CliError(
      `--model ${o.paths.model}: num_labels = ${cfg.numLabels} is a regression head; balora train trains classifiers (num_labels >= 2)`,
    );
  if (task === "nlu" && s.template !== null)
    throw new CliError("--template is a prompt for instruction data; a classifier reads the text field as it is (drop --template)");
  const fields = fieldsOf(s, task);
  const tokenizer = await Tokenizer.fromDir(o.paths.model);
  const records = await readRecords("--data", o.paths.data);
  if (task === "nlg" && isDefaultFields(s.fields)) refuseClassificationData(records, o.paths.data, o.paths.model, cfg);
  const template = s.template ?? undefined;
  const load = (recs: DataRecord[]) =>
    task === "nlu"
      ? buildClassificationDataset(recs, tokenizer, {
          fields,
          numLabels: cfg.numLabels,
          labelNames: labelNamesOf(cfg),
          maxLength: s.max_length,
          skipInvalid: s.skip_invalid,
        })
      : buildInstructionDataset(recs, tokenizer, { fields, template, maxLength: s.max_length, skipInvalid: s.skip_invalid });
  const ds = load(records);
  if (ds.skipped.length)
    log(`skipped ${ds.skipped.length} invalid row(s) of ${o.paths.data} (first: line ${ds.skipped[0].line}: ${ds.skipped[0].reason})`);
  if (ds.examples.length === 0) throw new CliError(`--data ${o.paths.data}: no training examples`);
  if (ds.truncated) log(`${ds.truncated} sequence(s) longer than --max-length ${s.max_length} were cut`);
  if ("withoutTargets" in ds && ds.withoutTargets)
    log(`${ds.withoutTargets} example(s) have no response token left after cutting; they add nothing to the loss`);
  let evalExamples: TrainExample[] | null = null;
  if (s.eval_data !== null) {
    const evalDs = load(await readRecords("--eval-data", s.eval_data));
    if (evalDs.skipped.length) log(`skipped ${evalDs.skipped.length} invalid row(s) of ${s.eval_data}`);
    if (evalDs.examples.length === 0) throw new CliError(`--eval-data ${s.eval_data}: no evaluation examples`);
    evalExamples = evalDs.examples;
  }
  const padTokenId = task === "nlu" ? cfg.padTokenId : padTokenIdOf(tokenizer);
  if (task === "nlu" && padTokenId === null && s.batch_size > 1) {
    const lengths = new Set([...ds.examples, ...(evalExamples ?? [])].map((e) => e.inputIds.length));
    if (lengths.size > 1)
      throw new CliError(
        `--model ${o.paths.model}: config.json has no pad_token_id, so the classifier cannot pool padded sequences; ` +
          "set pad_token_id in config.json or use --batch-size 1",
      );
  }
  await loadPlugins(s.plugins);
  const given = regularizersConfig(s);
  if (given.taskType !== undefined && given.taskType !== task)
    throw new CliError(
      `regularizers.taskType is "${given.taskType}" but --model ${o.paths.model} is a ${cfg.architecture} ` +
        `(task type "${task}"); drop taskType`,
    );
  const regularizers = resolveConfig({ ...given, taskType: task });
  const backend = await cliBackend();
  requireLongestFits([...ds.examples, ...(evalExamples ?? [])], cfg, backend, Math.min(s.batch_size, ds.examples.length));
  const model = await loadModel(o.paths.model, { backend });
  if (!(model instanceof (task === "nlu" ? SequenceClassifier : CausalLM)))
    throw new CliError(`--model ${o.paths.model}: not a ${task === "nlu" ? "sequence classifier" : "causal LM"}`);
  // The adapter, and its initial state (the teacher). A classifier also trains its score head (peft's SEQ_CLS).
  const pissaInit = s.adapter === null && s.init !== "lora";
  if (s.adapter) {
    await loadAdapter(model, s.adapter, { trainable: true });
    if (task === "nlu") addModulesToSave(model, [...SEQ_CLS_MODULES]);
    markInitialState(model);
  } else {
    const onLayer = (path: string, i: number, total: number) => log(`${s.init} ${i}/${total} ${path}`);
    injectAdapter(model, adapterConfigOf(s, o.paths.model, task), { seed: s.seed, ...(pissaInit ? { onLayer } : {}) });
  }
  if (task === "nlu" && savedModules(model).length === 0)
    throw new CliError(`--model ${o.paths.model}: no score (or classifier) Linear layer to train beside the adapter`);
  const plainStart = await forgetZeroInitialState(model); // plain LoRA: the teacher is the base alone
  const pissa = !plainStart && loraLayers(model).some(([, l]) => l.adapters.get("default")?.initial);
  const initLoraWeights = pissaInit ? (s.init as "pissa") : true;
  const trainable = trainableReport(model).line;
  const loss = new BaLoraLoss(regularizers, { warn: (m) => log(`warning: ${m}`) });
  const trainer = new Trainer<LanguageModel>({
    model,
    examples: ds.examples,
    padTokenId,
    settings: s,
    loss,
    warn: (m) => log(`warning: ${m}`),
    injectNonFinite: o.injectNonFinite,
  });
  const metricsPath = join(out, METRICS_FILE);
  const rows: StepRow[] = [];
  const evalRows: StepRow[] = [];
  try {
    if (!o.resuming || !(await exists(join(out, INITIAL_ADAPTER_DIR, "adapter_model.safetensors")))) {
      // Written before the first step: the state the teacher and a resumed run start from.
      await saveAdapter(model, join(out, INITIAL_ADAPTER_DIR), { initLoraWeights });
    }
    const runConfig = {
      model: resolve(o.paths.model),
      data: resolve(o.paths.data),
      ...s,
      fields,
      task,
      examples: ds.examples.length,
      eval_examples: evalExamples?.length ?? 0,
      total_steps: trainer.totalSteps,
      warmup_steps: trainer.warmupSteps,
      regularizers_effective: regularizers.effective,
      balora_version: JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")).version,
    };
    if (!o.resuming) await writeTextAtomically(join(out, CONFIG_FILE), `${JSON.stringify(runConfig, null, 2)}\n`);
    let metricsText = "";
    if (o.checkpoint) {
      metricsText = await restoreCheckpoint(trainer, o.checkpoint);
      log(`resumed from ${o.checkpoint} at step ${trainer.step} of ${trainer.totalSteps}`);
    }
    // metrics.jsonl holds exactly the steps done: the checkpoint's rows (a killed run may have written more).
    await writeTextAtomically(metricsPath, metricsText);
    for (const m of parseMetrics(metricsText, metricsPath).metrics as StepRow[]) (isEvalRow(m) ? evalRows : rows).push(m);
    log(`${trainable}; ${ds.examples.length} examples, ${trainer.totalSteps} steps (${regularizers.preset}${pissa ? ", PiSSA" : ""})`);
    o.onStarted?.();
    let interrupted: NodeJS.Signals | null = null;
    onInterrupt((sig) => {
      interrupted = sig;
      log(`${sig}: finishing step ${trainer.step + 1}, then writing a checkpoint (again to stop at once)`);
    });
    const bar = new Bar(trainer.totalSteps, trainer.step, log, log === progress && !!process.stderr.isTTY && !isQuiet());
    let lastSaved = o.checkpoint ? trainer.step : -1;
    const save = async () => {
      await writeCheckpoint(trainer, out, await readFile(metricsPath, "utf8"), initLoraWeights, s.save_total_limit);
      lastSaved = trainer.step;
    };
    while (!trainer.done) {
      const row = await trainer.trainStep();
      const extra = await o.afterStep?.(row, trainer as unknown as Trainer<CausalLM>);
      for (const [k, v] of Object.entries(extra ?? {})) row[k.startsWith("eval_") ? k : `eval_${k}`] = v;
      await appendFile(metricsPath, `${JSON.stringify(row)}\n`);
      rows.push(row);
      bar.update(row);
      // An evaluation is a row of its own after its step's row (as HF logs it), before that step's checkpoint.
      if (evalExamples && evaluatesAt(s, trainer.step, trainer.totalSteps)) {
        const e = await trainer.evaluate(evalExamples);
        const evalRow: StepRow = { step: trainer.step, epoch: row.epoch, ...e };
        await appendFile(metricsPath, `${JSON.stringify(evalRow)}\n`);
        evalRows.push(evalRow);
        log(
          `eval at step ${trainer.step}: loss ${e.eval_loss.toFixed(4)}` +
            (e.eval_accuracy !== undefined ? `, accuracy ${(100 * e.eval_accuracy).toFixed(1)}%` : ""),
        );
      }
      if (s.save_steps > 0 && trainer.step % s.save_steps === 0 && !trainer.done) await save();
      if (interrupted) {
        if (lastSaved !== trainer.step) await save();
        bar.end();
        throw new ExitRequest(
          signalExitCode(interrupted),
          `interrupted at step ${trainer.step} of ${trainer.totalSteps}; ` +
            `checkpoint written to ${join(out, `checkpoint-${trainer.step}`)}; ` +
            `continue with: balora train --resume ${out}`,
        );
      }
    }
    bar.end();
    if (lastSaved !== trainer.step) await save();
    onInterrupt(null);
    // The final adapter in peft's format, then what derives from it.
    await writeFiles(out, new Map(Object.entries(await adapterFiles(model, { initLoraWeights }))));
    if (pissa) await saveAdapter(model, join(out, "converted"), { convertPissaToLora: true });
    await writeTextAtomically(
      join(out, "report.html"),
      renderReport([{ name: basename(resolve(out)), config: runConfig, metrics: [...rows, ...evalRows].sort(byStep) as never }]),
    );
    if (o.merge) {
      log("merging the adapter into the base weights");
      mergeAndUnload(model);
      await writeMerged(model, o.paths.model, join(out, "merged"));
    }
    const last = rows[rows.length - 1];
    return { out, rows, evalRows, steps: trainer.totalSteps, seconds: Number(last?.elapsed_s ?? 0), pissa, trainable };
  } finally {
    onInterrupt(null);
    trainer.dispose();
    model.dispose();
  }
}

/** An evaluation row of metrics.jsonl: eval_* values and no training loss. */
const isEvalRow = (m: StepRow): boolean => m.loss === undefined && Object.keys(m).some((k) => k.startsWith("eval_"));
/** Rows by step, a step's own row before its evaluation (stable sort). */
const byStep = (a: StepRow, b: StepRow): number => Number(a.step) - Number(b.step) || Number(isEvalRow(a)) - Number(isEvalRow(b));

/** The class names of a classifier's config (id2label by index), so string labels can be used. */
function labelNamesOf(cfg: ModelConfig): string[] | undefined {
  const id2label = cfg.raw.id2label;
  if (!id2label || typeof id2label !== "object") return undefined;
  const names = Array.from({ length: cfg.numLabels }, (_, i) => (id2label as Record<string, unknown>)[String(i)]);
  return names.every((n) => typeof n === "string") ? (names as string[]) : undefined;
}

/** Classification rows (`text` and `label`, no `instruction`) for a causal LM: one line saying what to use instead. */
function refuseClassificationData(records: DataRecord[], data: string, model: string, cfg: ModelConfig): void {
  const first = records[0]?.value;
  if (!first || typeof first !== "object" || Array.isArray(first)) return;
  const row = first as Record<string, unknown>;
  if (!("text" in row && "label" in row) || "instruction" in row) return;
  throw new CliError(
    `--data ${data} has classification rows (text, label) but --model ${model} is a ${cfg.architecture} (causal LM); ` +
      "train a *ForSequenceClassification model on it, or give --fields for instruction data",
  );
}

async function writeMerged(model: LanguageModel, source: string, dir: string): Promise<void> {
  const planned = await planOutput({ flag: "--merge", path: dir, kind: "directory" }, { overwrite: true });
  await writeDirOutput(planned, (tmp) => writeModelDir(model, source, tmp));
}

/** checkpoint-<step>/ built under a temporary name, its marker last, then renamed; older ones beyond the limit removed. */
async function writeCheckpoint(
  trainer: Trainer<LanguageModel>,
  out: string,
  metrics: string,
  initLoraWeights: true | "pissa",
  limit: number | null,
): Promise<void> {
  const files = await checkpointFiles(trainer, metrics, { initLoraWeights });
  const target = join(out, `checkpoint-${trainer.step}`);
  const planned = await planOutput({ flag: "checkpoint", path: target, kind: "directory" }, { overwrite: true, note: () => {} });
  await writeDirOutput(planned, async (tmp) => {
    const marker = files.get(COMPLETE_FILE)!;
    files.delete(COMPLETE_FILE);
    await writeFiles(tmp, files);
    await writeTextAtomically(join(tmp, COMPLETE_FILE), marker as string);
  });
  if (limit !== null) {
    const complete = (await checkpoints(out)).filter((c) => c.complete);
    for (const c of complete.slice(0, Math.max(0, complete.length - limit))) await rm(c.dir, { recursive: true, force: true });
  }
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** A progress bar with ETA on a terminal; a plain line about every 5% of the run (or 10 s) otherwise. */
class Bar {
  private readonly started = performance.now();
  private lastLine = 0;
  private shown = false;
  constructor(
    private readonly total: number,
    private readonly first: number,
    private readonly log: (line: string) => void,
    private readonly tty: boolean,
  ) {}
  update(row: StepRow): void {
    const step = Number(row.step);
    const done = step - this.first;
    const per = (performance.now() - this.started) / 1000 / Math.max(done, 1);
    const eta = fmtTime(per * (this.total - step));
    const loss = Number(row.loss);
    const shown = Number.isFinite(loss) ? loss.toFixed(4) : "not finite";
    const text = `step ${step}/${this.total} loss ${shown} lr ${Number(row.lr).toExponential(2)} ETA ${eta}`;
    if (this.tty) {
      const width = 24;
      const fill = Math.round((width * step) / this.total);
      process.stderr.write(`\r[${"#".repeat(fill)}${".".repeat(width - fill)}] ${text}\x1b[K`);
      this.shown = true;
      return;
    }
    const now = performance.now();
    if (step === this.total || step % Math.max(1, Math.round(this.total / 20)) === 0 || now - this.lastLine > 10_000) {
      this.lastLine = now;
      this.log(text);
    }
  }
  end(): void {
    if (this.shown) process.stderr.write("\n");
    this.shown = false;
  }
}

const fmtTime = (sec: number): string => {
  if (!Number.isFinite(sec)) return "?";
  const m = Math.floor(sec / 60);
  return m > 0 ? `${m}m${String(Math.round(sec % 60)).padStart(2, "0")}s` : `${Math.round(sec)}s`;
};

/** The flags given, as settings (training_config.json keys). */
function flagSettings(a: Record<string, unknown>): Partial<TrainSettings> {
  const out: Record<string, unknown> = {};
  for (const [flag, key] of Object.entries(SETTING_FLAGS)) {
    const v = a[flag];
    if (v === undefined || (flag === "plugin" && (v as string[]).length === 0)) continue;
    if (flag === "target")
      out[key] =
        v === "all-linear"
          ? "all-linear"
          : (v as string)
              .split(",")
              .map((t) => t.trim())
              .filter(Boolean);
    else if (flag === "fields") out[key] = (v as string).split(",").map((t) => t.trim());
    else if (flag === "skipInvalid" || flag === "gradientCheckpointing") out[key] = v === true ? true : undefined;
    else out[key] = v;
  }
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out as Partial<TrainSettings>;
}

/** Settings errors name the flag (not the config key) when a flag gave the value. */
function checkSettings(partial: Record<string, unknown>, fromFlags: Set<string>): TrainSettings {
  try {
    if (partial.init === undefined && partial.adapter == null) partial.init = partial.preset === "lora" ? "lora" : "pissa";
    return resolveSettings(partial);
  } catch (e) {
    const msg = (e as Error).message;
    const key = msg.split(":")[0];
    const flag = Object.entries(SETTING_FLAGS).find(([, k]) => k === key)?.[0];
    if (flag && fromFlags.has(key)) throw new UsageError(`--${kebab(flag)}${msg.slice(key.length)}`);
    throw new CliError(msg);
  }
}

export const trainCommand: Command = {
  summary: "fine-tune a model with BA-LoRA (or LoRA/PiSSA baselines) and write a peft adapter",
  usage:
    "balora train --model DIR --data FILE --out DIR [--adapter DIR | --init pissa|pissa_niter_N|lora --r R --alpha A --target ...] " +
    "[--preset iclr2026|v5|lora|pissa] [--config FILE.json] [options] | balora train --resume DIR",
  flags: FLAGS,
  details:
    "Writes to --out: adapter_config.json + adapter_model.safetensors (peft), initial_adapter/ (the state training started from:\n" +
    "the teacher), converted/ (PiSSA runs: plain LoRA for the original base), training_config.json, metrics.jsonl (one row per\n" +
    "optimizer step), report.html, checkpoint-<step>/ folders, and merged/ with --merge. Ctrl-C writes a checkpoint and exits 130.\n" +
    'A *ForSequenceClassification model trains on classification rows ({"text": ..., "label": class index or id2label name}):\n' +
    "cross-entropy over the class logits, the regularizers' NLU forms, and the score head trained and saved as peft's SEQ_CLS\n" +
    'adapters do (modules_to_save). --eval-data adds rows {"step", "epoch", "eval_loss", "eval_accuracy" (classifiers),\n' +
    '"eval_examples", "eval_runtime"} to metrics.jsonl after the steps that evaluate: every --eval-steps (default: every\n' +
    "--save-steps) and at the end; eval_loss is the task loss alone, the mean over the file's supervised tokens (or examples).",
  async run(argv) {
    const a = parse(argv, FLAGS) as Record<string, unknown> & { [k: string]: never };
    const given = flagSettings(a);
    if (a.resume) {
      const flagOf = (key: string) => `--${kebab(Object.entries(SETTING_FLAGS).find(([, v]) => v === key)?.[0] ?? key)}`;
      const other = Object.keys(given).concat(["model", "data", "out", "config", "template"].filter((k) => a[k] !== undefined));
      if (other.length)
        throw new UsageError(`--resume continues a run with the settings in its ${CONFIG_FILE}; drop ${other.map(flagOf).join(", ")}`);
      await resumeRun(a.resume as string, !!a.merge);
      return;
    }
    for (const f of ["model", "data", "out"] as const) if (a[f] === undefined) throw new UsageError(`--${f} is required (or --resume DIR)`);
    if (a.adapter !== undefined && a.init !== undefined)
      throw new UsageError("--adapter starts from a saved adapter; --init creates one: give one of them");
    const fileSettings = a.config ? await readRunConfig(a.config as string, [...SETTING_KEYS]) : {};
    const partial: Record<string, unknown> = { ...fileSettings, ...given };
    if (a.template) partial.template = await readTemplate("--template", a.template as string);
    const s = checkSettings(partial, new Set(Object.keys(given)));
    integer("--r", s.r, 1);
    await readModelConfig(a.model as string);
    await requireFile("--data", a.data as string, "a data file (JSONL, one JSON object per line, or a JSON array)");
    if (s.eval_steps !== null && s.eval_data === null) throw new UsageError("--eval-steps needs --eval-data FILE (what to evaluate on)");
    if (s.eval_data !== null) {
      await requireFile("--eval-data", s.eval_data, "a data file in the --data format");
      s.eval_data = resolve(s.eval_data); // training_config.json records where it is, for --resume from anywhere
    }
    if (s.adapter) await checkAdapterDir(s.adapter);
    const out = await planOutput(
      { flag: "--out", path: a.out as string, kind: "directory" },
      {
        overwrite: !!a.overwrite,
        inputs: [
          { flag: "--model", path: a.model as string },
          { flag: "--data", path: a.data as string },
          { flag: "--eval-data", path: s.eval_data ?? undefined },
          { flag: "--adapter", path: s.adapter ?? undefined },
        ],
      },
    );
    if (out.exists) await rm(out.target, { recursive: true, force: true });
    await mkdir(out.target, { recursive: true });
    // Until the first step, the folder is a temporary: a mistake found while loading, or Ctrl-C, removes it.
    let started = false;
    registerTemp(out.target);
    const begin = () => {
      started = true;
      unregisterTemp(out.target);
    };
    try {
      const result = await trainRun({
        settings: s,
        paths: { model: a.model as string, data: a.data as string, out: out.target },
        checkpoint: null,
        resuming: false,
        merge: !!a.merge,
        onStarted: begin,
      });
      summary(result);
    } catch (e) {
      if (!started) {
        unregisterTemp(out.target);
        await rm(out.target, { recursive: true, force: true });
      }
      throw e;
    }
  },
};

function summary(r: TrainRunResult): void {
  const last = r.rows[r.rows.length - 1];
  const loss = last ? Number(last.loss).toFixed(4) : "-";
  const ev = r.evalRows[r.evalRows.length - 1];
  const accuracy = ev?.eval_accuracy !== undefined ? `, eval accuracy ${(100 * Number(ev.eval_accuracy)).toFixed(1)}%` : "";
  const evalText = ev ? `, eval loss ${Number(ev.eval_loss).toFixed(4)}${accuracy}` : "";
  console.log(`trained ${r.steps} steps in ${r.seconds.toFixed(1)} s (final loss ${loss}${evalText}); wrote the adapter to ${r.out}`);
}

/** `--resume DIR`: the run folder (its newest complete checkpoint) or one checkpoint folder. */
async function resumeRun(dir: string, merge: boolean): Promise<void> {
  await requireDir("--resume", dir, "a balora train --out folder or one of its checkpoint-N folders");
  let out = resolve(dir);
  let checkpoint: string | null = null;
  if (CHECKPOINT_RE.test(basename(out)) && !(await exists(join(out, CONFIG_FILE)))) {
    checkpoint = out;
    out = dirname(out);
    await readCheckpointState(checkpoint).catch((e) => {
      throw new CliError(`--resume ${dir}: ${(e as Error).message}`);
    });
  }
  const configPath = join(out, CONFIG_FILE);
  if (!(await exists(configPath))) throw new CliError(`--resume ${dir}: no ${CONFIG_FILE} in ${out}; is it a balora train --out folder?`);
  let recorded: Record<string, unknown>;
  try {
    recorded = JSON.parse(await readFile(configPath, "utf8"));
  } catch (e) {
    throw new CliError(`${configPath}: invalid JSON (${(e as Error).message})`);
  }
  if (!checkpoint) {
    const complete = (await checkpoints(out)).filter((c) => c.complete);
    checkpoint = complete.length ? complete[complete.length - 1].dir : null;
    if (!checkpoint) progress(`no complete checkpoint in ${out} yet: starting the run again from step 0`);
  }
  const settings = checkSettings(
    Object.fromEntries(Object.entries(recorded).filter(([k]) => (SETTING_KEYS as string[]).includes(k))),
    new Set(),
  );
  const unknown = Object.keys(recorded).filter((k) => !(k in DEFAULT_SETTINGS) && !RUN_KEYS.includes(k));
  if (unknown.length) throw new CliError(`${configPath}: unknown key ${unknown[0]}`);
  const result = await trainRun({
    settings,
    paths: { model: String(recorded.model), data: String(recorded.data), out },
    checkpoint,
    resuming: true,
    merge,
  });
  summary(result);
}
