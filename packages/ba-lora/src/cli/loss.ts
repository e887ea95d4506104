// `balora loss` (also `balora eval loss`): the task loss and each regularizer's unweighted value over a whole
// data file, exactly as the trainer computes them on one accumulated batch, with the teacher it would use.
import { stat } from "node:fs/promises";
import { join } from "node:path";
import {
  AdapterFormatError,
  disableAdapters,
  loadAdapter,
  loadInitialState,
  type LoraLinear,
  loraLayers,
  withInitialAdapters,
} from "@balora/lora";
import { Tokenizer } from "@balora/models";
import { BaLoraLoss, resolveConfig } from "@balora/regularizers";
import * as T from "@balora/tensor";
import { buildInstructionDataset, type CausalBatch, collateCausal, padTokenIdOf } from "../data/instruction.js";
import { batchLoss, fusedHeadOf } from "../train/batch-loss.js";
import { maskedRows } from "../train/trainer.js";
import { CliError, type FlagSpecs, integer, parse, UsageError } from "./args.js";
import { parseFields, readRecords, readTemplate } from "./data-file.js";
import type { Command } from "./main.js";
import {
  ADAPTER_FLAG,
  checkAdapterDir,
  checkCausal,
  cliBackend,
  INITIAL_ADAPTER_DIR,
  loadCausal,
  MODEL_FLAG,
  requireLongestFits,
} from "./model.js";
import { loadPlugins } from "./plugins.js";
import { progress } from "./progress.js";
import {
  checkRegularizerSettings,
  mergeRegularizerSettings,
  REGULARIZER_KEYS,
  type RegularizerSettings,
  readRunConfig,
  regularizersConfigOf,
} from "./run-config.js";

const FLAGS = {
  model: MODEL_FLAG,
  adapter: ADAPTER_FLAG,
  teacherAdapter: {
    type: "string",
    value: "DIR",
    help: "the teacher is the base + this peft adapter (else the adapter's initial_adapter/, else the base)",
  },
  data: { type: "string", value: "FILE", required: true, help: "instruction data, JSONL (or a JSON array)" },
  preset: { type: "string", value: "iclr2026|v5|lora|pissa", help: "the regularizers' preset; unset: --config's, else iclr2026" },
  config: {
    type: "string",
    value: "FILE",
    help: `JSON settings: ${REGULARIZER_KEYS.join(", ")} (regularizers: resolveConfig's fields); flags override them`,
  },
  fields: { type: "string", value: "Q,R", default: "instruction,output", help: "the query and response fields" },
  template: { type: "string", value: "FILE", help: "a prompt template file with {instruction}; none: the Alpaca prompt" },
  maxLength: { type: "number", default: 512, help: "tokens per sequence (longer ones are cut)" },
  batchSize: { type: "number", default: 4, help: "sequences per batch, in file order (the SVD term is a per-batch value)" },
  maskMode: { type: "string", value: "shifted|unshifted|none", help: "which logit rows the terms count; unset: the preset's" },
  lambda1: { type: "number", value: "L", help: "consistency weight; unset: the preset's" },
  lambda2: { type: "number", value: "L", help: "diversity weight; unset: the preset's" },
  lambda3: { type: "number", value: "L", help: "SVD weight; unset: the preset's" },
  k: { type: "number", help: "singular values in the SVD term; unset: the preset's" },
  tau: { type: "number", value: "T", help: "consistency temperature; unset: the preset's" },
  topKEntropy: { type: "number", value: "K", help: "diversity over the top K logits, 0 = full vocabulary; unset: the preset's" },
  plugin: { type: "string", value: "NAME", multiple: true, help: "load a regularizer package (or .js file) first; repeatable" },
  skipInvalid: { type: "boolean", help: "skip invalid rows (counted) instead of stopping at the first" },
  json: { type: "boolean", help: "print one JSON object on stdout" },
  quiet: { type: "boolean", help: "no progress lines on stderr" },
} satisfies FlagSpecs;

const USAGE =
  "balora loss --model DIR [--adapter DIR] [--teacher-adapter DIR] --data FILE.jsonl [--preset iclr2026|v5|lora|pissa] " +
  "[--config FILE.json] [--plugin NAME]... [--json]";

const DETAILS = `
Over the whole file, as the trainer computes one step's loss on an accumulated batch of every example:
task_loss is the mean cross-entropy per target token (the response + EOS after the Alpaca prompt or
--template), consistency and diversity are token means over the rows the mask counts, svd is the mean
of the per-batch values (batches of --batch-size in file order). Values are the terms before their λ;
a term whose λ is 0 (every term of --preset lora|pissa) is null. Plugin terms are printed by name.
Teacher: the base + --teacher-adapter when given; else the base + the adapter's initial_adapter/ (the
state training started from, which balora train writes); else the base model (the adapter off).
--json prints {"task_loss", "consistency", "diversity", "svd", <plugin terms>, "tokens", "examples", "teacher"}.`;

const BUILT_IN = ["consistency", "diversity", "svd"] as const;
const RESERVED = ["task_loss", "tokens", "examples", "teacher"];

export type TeacherKind = "teacher-adapter" | "initial_adapter" | "base";

const flagName = (key: string): string => (key === "plugins" ? "--plugin" : `--${key.replace(/_/g, "-")}`);

/** The settings: the --config file's, then the flags over them. */
async function settingsOf(a: ReturnType<typeof parse<typeof FLAGS>>): Promise<RegularizerSettings> {
  const file = a.config
    ? checkRegularizerSettings(await readRunConfig(a.config, REGULARIZER_KEYS), (key, why) => {
        throw new CliError(`--config ${a.config}: ${key} ${why}`);
      })
    : {};
  const flags = checkRegularizerSettings(
    {
      preset: a.preset,
      mask_mode: a.maskMode,
      lambda1: a.lambda1,
      lambda2: a.lambda2,
      lambda3: a.lambda3,
      k: a.k,
      tau: a.tau,
      top_k_entropy: a.topKEntropy,
      plugins: a.plugin,
    },
    (key, why) => {
      throw new UsageError(`${flagName(key)} ${why}`);
    },
  );
  return mergeRegularizerSettings(file, flags);
}

/** Runs `fn` with each adapter's trained tensors although an enclosing `withInitialAdapters` is on. */
function trainedView(layers: LoraLinear[]): <R>(fn: () => R) => R {
  return <R>(fn: () => R): R => {
    for (const l of layers) l.useInitial = false;
    try {
      return fn();
    } finally {
      for (const l of layers) l.useInitial = true;
    }
  };
}

const fitError = (flag: string, dir: string, e: unknown, against: string): CliError => {
  const msg = (e as Error).message.split("\n")[0];
  const why = msg.replace(/^.*?: the adapter does not fit the model: /, "");
  return new CliError(`${flag} ${dir}: does not fit ${against}: ${why}`);
};

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

export const lossCommand: Command = {
  summary: "the task loss and each regularizer's value on a data file (no training)",
  usage: USAGE,
  flags: FLAGS,
  details: DETAILS,
  async run(argv) {
    const a = parse(argv, FLAGS);
    const maxLength = integer("--max-length", a.maxLength!, 2);
    const batchSize = integer("--batch-size", a.batchSize!, 1);
    const fields = parseFields("--fields", a.fields!);
    const settings = await settingsOf(a);
    const cfg = await checkCausal(a.model!, a.adapter, "balora loss");
    if (a.teacherAdapter) await checkAdapterDir(a.teacherAdapter, "--teacher-adapter");
    const template = a.template ? await readTemplate("--template", a.template) : undefined;
    const records = await readRecords("--data", a.data!);
    const plugins = settings.plugins?.length ? await loadPlugins(settings.plugins) : [];
    let config: ReturnType<typeof resolveConfig>;
    try {
      config = resolveConfig(regularizersConfigOf(settings));
    } catch (e) {
      const msg = (e as Error).message;
      const hint = /is not registered/.test(msg) ? "; pass --plugin PACKAGE (or list it in the config's plugins)" : "";
      throw new CliError(`${a.config ? `--config ${a.config}: ` : ""}regularizers: ${msg.split("\n")[0]}${hint}`);
    }
    if (config.taskType !== "nlg") throw new CliError("balora loss computes causal-LM (nlg) terms; remove taskType from the config");
    for (const t of config.terms)
      if (RESERVED.includes(t.name))
        throw new CliError(`regularizer "${t.name}" has the name of an output field; register it under another`);
    const loss = new BaLoraLoss(config, { warn: (m) => console.error(`balora loss: warning: ${m}`) });

    const tokenizer = await Tokenizer.fromDir(a.model!);
    const ds = buildInstructionDataset(records, tokenizer, { fields, template, maxLength, skipInvalid: a.skipInvalid });
    if (ds.skipped.length)
      progress(`skipped ${ds.skipped.length} invalid row(s) of ${a.data} (first: line ${ds.skipped[0].line}: ${ds.skipped[0].reason})`);
    if (ds.examples.length === 0) throw new CliError(`--data ${a.data}: no examples`);
    if (ds.truncated) progress(`${ds.truncated} sequence(s) longer than --max-length ${maxLength} were cut`);
    const padId = padTokenIdOf(tokenizer);
    const batches: CausalBatch[] = [];
    for (let i = 0; i < ds.examples.length; i += batchSize) batches.push(collateCausal(ds.examples.slice(i, i + batchSize), padId));
    const tokens = batches.reduce((s, b) => s + b.supervisedTokens, 0);
    if (tokens === 0)
      throw new CliError(`--data ${a.data}: no target tokens (every sequence is cut before its response); raise --max-length`);
    const accumulated = {
      validRows: batches.reduce((s, b) => s + maskedRows(b.labels, b.batchSize, b.seqLength, config.maskMode), 0),
      sequences: ds.examples.length,
      microBatches: batches.length,
    };

    requireLongestFits(ds.examples, cfg, await cliBackend(), batchSize);
    const model = await loadCausal(a.model!, a.adapter);

    // The teacher, and how each batch runs: `outer` wraps the whole batch (the student's view), `teacherView` the teacher's forward.
    let teacher: TeacherKind;
    let outer = <R>(fn: () => R): R => fn();
    let teacherView: (<R>(fn: () => R) => R) | undefined;
    const initialDir = a.adapter ? join(a.adapter, INITIAL_ADAPTER_DIR) : null;
    if (a.teacherAdapter && a.adapter) {
      teacher = "teacher-adapter";
      try {
        await loadInitialState(model, a.teacherAdapter);
      } catch (e) {
        if (e instanceof AdapterFormatError) throw fitError("--teacher-adapter", a.teacherAdapter, e, `--adapter ${a.adapter}`);
        throw e;
      }
    } else if (a.teacherAdapter) {
      // The student is the base: the teacher adapter's initial state (none, or PiSSA's recomputed one on its residual).
      teacher = "teacher-adapter";
      try {
        await loadAdapter(model, a.teacherAdapter);
      } catch (e) {
        if (e instanceof AdapterFormatError) throw fitError("--teacher-adapter", a.teacherAdapter, e, `--model ${a.model}`);
        throw e;
      }
      outer = <R>(fn: () => R): R => withInitialAdapters(model, fn);
      teacherView = trainedView(loraLayers(model).map(([, l]) => l));
    } else if (initialDir && (await isDir(initialDir))) {
      teacher = "initial_adapter";
      try {
        await loadInitialState(model, initialDir);
      } catch (e) {
        if (e instanceof AdapterFormatError) throw fitError("--adapter", a.adapter!, e, "its adapter: initial_adapter/");
        throw e;
      }
    } else {
      teacher = "base";
      // Adapters without an initial state are off; a PiSSA adapter's recomputed initial state gives back the base weights.
      const hasInitial = loraLayers(model).some(([, l]) => [...l.adapters.values()].some((st) => st.initial));
      teacherView = hasInitial ? undefined : <R>(fn: () => R): R => disableAdapters(model, fn);
    }
    model.eval();

    const head = fusedHeadOf(model);
    const names = config.terms.map((t) => t.name);
    const sums: Record<string, number> = Object.fromEntries(["task", ...names].map((n) => [n, 0]));
    const start = performance.now();
    let done = 0;
    for (const batch of batches) {
      const result = T.noGrad(() =>
        outer(() =>
          batchLoss(model, loss, batch, { step: 0, totalSteps: 1, numItems: tokens, accumulated, head, teacherView: teacherView }),
        ),
      );
      // [task, each term, the vacuous flags] in one readback per batch; the sums stay float64 on the host.
      const flags = BaLoraLoss.vacuousFlags(result);
      const read = T.tidy(() =>
        T.concat([result.task, ...names.map((n) => result.terms[n])].map((t) => T.reshape(T.detach(t), [1])).concat(flags ? [flags] : [])),
      );
      try {
        const values = await read.data();
        sums.task += values[0];
        names.forEach((n, i) => {
          sums[n] += values[1 + i];
        });
        loss.warnVacuous(result.vacuous, values.subarray(1 + names.length));
      } finally {
        for (const t of [read, flags]) t?.dispose();
        BaLoraLoss.dispose(result);
      }
      done += batch.batchSize;
      progress(`loss ${done}/${ds.examples.length} sequences`);
    }
    const seconds = (performance.now() - start) / 1000;
    const value = (n: string): number | null => (names.includes(n) ? sums[n] : null);
    const extra = names.filter((n) => !(BUILT_IN as readonly string[]).includes(n));
    for (const p of plugins)
      if (!names.includes(p)) progress(`plugin term ${p} is registered but not enabled (set regularizers.terms.${p})`);

    if (a.json) {
      const out: Record<string, unknown> = { task_loss: sums.task };
      for (const n of BUILT_IN) out[n] = value(n);
      for (const n of extra) out[n] = sums[n];
      Object.assign(out, { tokens, examples: ds.examples.length, teacher });
      console.log(JSON.stringify(out));
      return;
    }
    const lambdas = loss.lambdas(0, 1);
    const rows: string[][] = [["term", "value", "λ at step 0", "λ", "schedule"]];
    rows.push(["task_loss", fmt(sums.task), "1", "1", "-"]);
    for (const n of [...BUILT_IN, ...extra]) {
      const t = config.terms.find((x) => x.name === n);
      rows.push(t ? [n, fmt(sums[n]), String(lambdas[n]), String(t.lambda), t.schedule.kind] : [n, "null", "0", "0", "off"]);
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    const teacherText =
      teacher === "teacher-adapter"
        ? `the base + --teacher-adapter ${a.teacherAdapter}`
        : teacher === "initial_adapter"
          ? `the base + ${initialDir} (the state training started from)`
          : `the base model${a.adapter ? " (the adapter off)" : ""}`;
    console.log(
      `balora loss: ${a.data}, ${ds.examples.length} examples, ${tokens} target tokens, ${batches.length} batch(es) of ${batchSize}; ` +
        `preset ${config.preset}, mask ${config.maskMode}; teacher: ${teacherText}${loss.needsTeacher ? "" : " (no active term reads it)"}`,
    );
    for (const r of rows)
      console.log(
        r
          .map((c, i) => (i === 1 ? c.padStart(widths[i]) : c.padEnd(widths[i])))
          .join("  ")
          .trimEnd(),
      );
    console.log(`in ${seconds.toFixed(1)} s`);
  },
};

const fmt = (x: number): string => (Number.isFinite(x) ? x.toFixed(6) : String(x));
