// A training run's settings with every default spelled out (what training_config.json records and a
// resumed run re-reads), their checks (one line naming the setting), and the step arithmetic of HF Trainer.
import type { LoraConfig } from "@balora/lora";
import { MASK_MODES, MAX_TOP_K, type MaskMode, PRESETS, type PresetName, type RegularizersConfig } from "@balora/regularizers";
import { ArgumentError } from "@balora/tensor";
import { batchesPerEpoch } from "../data/order.js";

export const SCHEDULERS = ["constant", "linear", "cosine"] as const;
export type SchedulerName = (typeof SCHEDULERS)[number];

/** Every setting of a run (snake_case, as training_config.json and --config files spell them). */
export interface TrainSettings {
  /** The adapter: "pissa", "pissa_niter_<N>" or "lora" created in memory, unless `adapter` names a directory to start from. */
  init: string;
  adapter: string | null;
  r: number;
  alpha: number;
  /** Layer names, or "all-linear". */
  target: string[] | "all-linear";
  lora_dropout: number;
  preset: PresetName;
  /** Flat regularizer overrides (null: the preset's value). */
  lambda1: number | null;
  lambda2: number | null;
  lambda3: number | null;
  k: number | null;
  tau: number | null;
  top_k_entropy: number | null;
  mask_mode: MaskMode | null;
  /** Passed to resolveConfig as-is (terms of plugins, per-term schedules and options). */
  regularizers: RegularizersConfig;
  plugins: string[];
  /** The data fields: query and response (causal LM); a classifier reads text and label unless they are changed. */
  fields: [string, string];
  /** Prompt template text (null: the paper's Alpaca prompt). */
  template: string | null;
  max_length: number;
  skip_invalid: boolean;
  lr: number;
  epochs: number;
  max_steps: number | null;
  batch_size: number;
  grad_accum: number;
  scheduler: SchedulerName;
  warmup_ratio: number;
  weight_decay: number;
  max_grad_norm: number;
  seed: number;
  /** A checkpoint every N optimizer steps (0: only at the end). */
  save_steps: number;
  /** Keep only the newest K checkpoints (null: all). */
  save_total_limit: number | null;
  gradient_checkpointing: boolean;
  /** Stop after this many non-finite steps in a row. */
  max_bad_steps: number;
  /** Evaluation data (the training data's format), or null for none. */
  eval_data: string | null;
  /** Evaluate every N optimizer steps (null: every save_steps, 0: only at the end); always at the end. */
  eval_steps: number | null;
}

export const DEFAULT_SETTINGS: TrainSettings = {
  init: "pissa",
  adapter: null,
  r: 8,
  alpha: 8,
  target: "all-linear",
  lora_dropout: 0,
  preset: "iclr2026",
  lambda1: null,
  lambda2: null,
  lambda3: null,
  k: null,
  tau: null,
  top_k_entropy: null,
  mask_mode: null,
  regularizers: {},
  plugins: [],
  fields: ["instruction", "output"],
  template: null,
  max_length: 512,
  skip_invalid: false,
  lr: 2e-5,
  epochs: 1,
  max_steps: null,
  batch_size: 4,
  grad_accum: 1,
  scheduler: "cosine",
  warmup_ratio: 0.03,
  weight_decay: 0,
  max_grad_norm: 1,
  seed: 42,
  save_steps: 500,
  save_total_limit: null,
  gradient_checkpointing: false,
  max_bad_steps: 5,
  eval_data: null,
  eval_steps: null,
};

/** The data fields of each task by default. */
export const DEFAULT_FIELDS = { nlg: ["instruction", "output"], nlu: ["text", "label"] } as const;

/** Whether `fields` are the causal-LM default (a classifier then reads its own default fields). */
export const isDefaultFields = (f: readonly string[]): boolean => f.length === 2 && f.every((x, i) => x === DEFAULT_FIELDS.nlg[i]);

/** The fields a run reads: the setting, or for a classifier text and label when the setting is the causal-LM default. */
export const fieldsOf = (s: Pick<TrainSettings, "fields">, task: "nlg" | "nlu"): [string, string] =>
  task === "nlu" && isDefaultFields(s.fields) ? [...DEFAULT_FIELDS.nlu] : s.fields;

/** Whether an evaluation runs after optimizer step `step` (1-based) of `total`: every eval_steps (or save_steps), and at the end. */
export function evaluatesAt(s: Pick<TrainSettings, "eval_data" | "eval_steps" | "save_steps">, step: number, total: number): boolean {
  if (s.eval_data === null) return false;
  const every = s.eval_steps ?? s.save_steps;
  return step === total || (every > 0 && step % every === 0);
}

export const SETTING_KEYS = Object.keys(DEFAULT_SETTINGS) as (keyof TrainSettings)[];

const fail = (key: string, why: string): never => {
  throw new ArgumentError(`${key}: ${why}`);
};

function int(s: TrainSettings, key: keyof TrainSettings, min: number, max = 2 ** 32 - 1): void {
  const v = s[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    fail(key, `must be an integer from ${min}${max < 2 ** 32 - 1 ? ` to ${max}` : ""}, got ${JSON.stringify(v)}`);
}

function num(s: TrainSettings, key: keyof TrainSettings, ok: (v: number) => boolean, range: string): void {
  const v = s[key];
  if (typeof v !== "number" || !Number.isFinite(v) || !ok(v)) fail(key, `must be a number ${range}, got ${JSON.stringify(v)}`);
}

/** Defaults under `partial` (unknown keys refused), then every check; returns the complete settings. */
export function resolveSettings(partial: Partial<TrainSettings> & Record<string, unknown>): TrainSettings {
  const unknown = Object.keys(partial).filter((k) => !(SETTING_KEYS as string[]).includes(k));
  if (unknown.length) fail(unknown[0], `is not a training setting (settings: ${SETTING_KEYS.join(", ")})`);
  const s = { ...DEFAULT_SETTINGS } as TrainSettings;
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) (s as unknown as Record<string, unknown>)[k] = v;
  if (s.init !== "lora" && !/^pissa(_niter_[1-9]\d*)?$/.test(s.init)) fail("init", `must be pissa, pissa_niter_<N> or lora, got ${s.init}`);
  int(s, "r", 1);
  num(s, "alpha", (v) => v > 0, "> 0");
  if (!(s.target === "all-linear" || (Array.isArray(s.target) && s.target.length > 0 && s.target.every((t) => typeof t === "string" && t))))
    fail("target", `must be "all-linear" or a non-empty list of layer names, got ${JSON.stringify(s.target)}`);
  num(s, "lora_dropout", (v) => v >= 0 && v < 1, "in [0, 1)");
  num(s, "lr", (v) => v >= 0, ">= 0");
  int(s, "epochs", 1);
  if (s.max_steps !== null) int(s, "max_steps", 1);
  int(s, "batch_size", 1);
  int(s, "grad_accum", 1);
  if (!(SCHEDULERS as readonly string[]).includes(s.scheduler))
    fail("scheduler", `must be one of ${SCHEDULERS.join(", ")}, got ${s.scheduler}`);
  num(s, "warmup_ratio", (v) => v >= 0 && v <= 1, "in [0, 1]");
  num(s, "weight_decay", (v) => v >= 0, ">= 0");
  num(s, "max_grad_norm", (v) => v >= 0, ">= 0 (0: no clipping)");
  int(s, "max_length", 2);
  int(s, "seed", 0);
  int(s, "save_steps", 0);
  if (s.save_total_limit !== null) int(s, "save_total_limit", 1);
  int(s, "max_bad_steps", 1);
  if (!Array.isArray(s.fields) || s.fields.length !== 2 || !s.fields.every((f) => typeof f === "string" && f))
    fail("fields", `must be two field names ([query, response] or [text, label]), got ${JSON.stringify(s.fields)}`);
  if (s.eval_data !== null && (typeof s.eval_data !== "string" || s.eval_data === ""))
    fail("eval_data", `must be a file path or null, got ${JSON.stringify(s.eval_data)}`);
  if (s.eval_steps !== null) int(s, "eval_steps", 0);
  for (const b of ["skip_invalid", "gradient_checkpointing"] as const)
    if (typeof s[b] !== "boolean") fail(b, `must be true or false, got ${JSON.stringify(s[b])}`);
  checkRegularizerSettings(Object.fromEntries(REGULARIZER_KEYS.map((k) => [k, s[k] ?? undefined])), (key, why) => fail(key, why));
  return s;
}

/** The settings as resolveConfig takes them: the `regularizers` object, the preset, then the flat overrides that are set. */
export function regularizersConfig(s: TrainSettings): RegularizersConfig {
  const set = Object.fromEntries(REGULARIZER_KEYS.map((k) => [k, s[k] ?? undefined]));
  return regularizersConfigOf(set as RegularizerSettings);
}

/** The regularizer keys of a config file (snake_case, as training_config.json spells them); the trainer adds its own. */
export const REGULARIZER_KEYS = [
  "preset",
  "mask_mode",
  "lambda1",
  "lambda2",
  "lambda3",
  "k",
  "tau",
  "top_k_entropy",
  "plugins",
  "regularizers",
] as const;

/** The regularizer settings of a config file or the flags, checked; absent keys stay absent. */
export interface RegularizerSettings {
  preset?: PresetName;
  mask_mode?: MaskMode;
  lambda1?: number;
  lambda2?: number;
  lambda3?: number;
  k?: number;
  tau?: number;
  top_k_entropy?: number;
  plugins?: string[];
  /** Passed to resolveConfig as-is (its `terms`, `consistency`, `diversity`, `svd`, ... fields). */
  regularizers?: RegularizersConfig;
}

const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/**
 * Checks the REGULARIZER_KEYS of `values` (undefined ones are skipped); `fail(key, why)` throws the caller's
 * error (naming the file or the flag). Other keys are ignored: `readRunConfig` has checked them.
 */
export function checkRegularizerSettings(values: Record<string, unknown>, fail: (key: string, why: string) => never): RegularizerSettings {
  const out: RegularizerSettings = {};
  const v = (k: string) => values[k];
  if (v("preset") !== undefined) {
    if (!PRESETS.includes(v("preset") as PresetName))
      fail("preset", `must be one of ${PRESETS.join(", ")}, got ${JSON.stringify(v("preset"))}`);
    out.preset = v("preset") as PresetName;
  }
  if (v("mask_mode") !== undefined) {
    if (!MASK_MODES.includes(v("mask_mode") as MaskMode))
      fail("mask_mode", `must be one of ${MASK_MODES.join(", ")}, got ${JSON.stringify(v("mask_mode"))}`);
    out.mask_mode = v("mask_mode") as MaskMode;
  }
  for (const k of ["lambda1", "lambda2", "lambda3"] as const) {
    const x = v(k);
    if (x === undefined) continue;
    if (!isNumber(x) || x < 0) fail(k, `must be a number >= 0 (0 turns the term off), got ${JSON.stringify(x)}`);
    out[k] = x as number;
  }
  if (v("k") !== undefined) {
    const x = v("k");
    if (!isNumber(x) || !Number.isInteger(x) || x < 1)
      fail("k", `must be an integer >= 1 (singular values in the SVD term), got ${JSON.stringify(x)}`);
    out.k = x as number;
  }
  if (v("tau") !== undefined) {
    const x = v("tau");
    if (!isNumber(x) || x <= 0) fail("tau", `must be a number > 0 (the consistency temperature), got ${JSON.stringify(x)}`);
    out.tau = x as number;
  }
  if (v("top_k_entropy") !== undefined) {
    const x = v("top_k_entropy");
    if (!isNumber(x) || !Number.isInteger(x) || x < 0 || x > MAX_TOP_K)
      fail("top_k_entropy", `must be an integer from 0 (the full vocabulary) to ${MAX_TOP_K}, got ${JSON.stringify(x)}`);
    out.top_k_entropy = x as number;
  }
  if (v("plugins") !== undefined) {
    const x = v("plugins");
    if (!Array.isArray(x) || !x.every((p) => typeof p === "string" && p !== ""))
      fail("plugins", `must be a list of package names or paths, got ${JSON.stringify(x)}`);
    out.plugins = x as string[];
  }
  if (v("regularizers") !== undefined) {
    const x = v("regularizers");
    if (x === null || typeof x !== "object" || Array.isArray(x))
      fail("regularizers", `must be an object of regularizer settings ({"terms": {...}, "svd": {...}}), got ${JSON.stringify(x)}`);
    out.regularizers = x as RegularizersConfig;
  }
  return out;
}

/** Settings of a file, then the flags over them (plugins of both, each once). */
export function mergeRegularizerSettings(file: RegularizerSettings, flags: RegularizerSettings): RegularizerSettings {
  const out: RegularizerSettings = { ...file };
  for (const [k, x] of Object.entries(flags)) if (x !== undefined) (out as Record<string, unknown>)[k] = x;
  out.plugins = [...new Set([...(file.plugins ?? []), ...(flags.plugins ?? [])])];
  return out;
}

/** The config resolveConfig takes: the `regularizers` object, with the flat settings over it. */
export function regularizersConfigOf(s: RegularizerSettings): RegularizersConfig {
  const c: RegularizersConfig = { ...(s.regularizers ?? {}) };
  if (s.preset !== undefined) c.preset = s.preset;
  if (s.mask_mode !== undefined) c.maskMode = s.mask_mode;
  if (s.lambda1 !== undefined) c.lambda1 = s.lambda1;
  if (s.lambda2 !== undefined) c.lambda2 = s.lambda2;
  if (s.lambda3 !== undefined) c.lambda3 = s.lambda3;
  if (s.k !== undefined) c.k = s.k;
  if (s.tau !== undefined) c.tau = s.tau;
  if (s.top_k_entropy !== undefined) c.topKEntropy = s.top_k_entropy;
  return c;
}

/** Optimizer steps per epoch: ceil(batches / grad_accum), the last one taking the remainder (HF). */
export const stepsPerEpoch = (examples: number, s: Pick<TrainSettings, "batch_size" | "grad_accum">): number =>
  Math.ceil(batchesPerEpoch(examples, s.batch_size) / s.grad_accum);

/** Total optimizer steps: max_steps, or epochs × steps per epoch. */
export function totalSteps(examples: number, s: Pick<TrainSettings, "batch_size" | "grad_accum" | "epochs" | "max_steps">): number {
  if (examples === 0) throw new ArgumentError("the training data has no example");
  return s.max_steps ?? s.epochs * stepsPerEpoch(examples, s);
}

/** The modules peft trains and saves beside a classifier's adapter (task_type SEQ_CLS adds both names). */
export const SEQ_CLS_MODULES = ["classifier", "score"] as const;

/**
 * The peft config of the adapter a run creates in memory (`init` pissa, pissa_niter_N or lora): r, α,
 * dropout, targets and init from the settings; a classifier (task "nlu") adds SEQ_CLS and its score head.
 */
export function adapterConfigOf(s: TrainSettings, baseModel: string, task: "nlg" | "nlu" = "nlg"): Partial<LoraConfig> {
  return {
    r: s.r,
    lora_alpha: s.alpha,
    lora_dropout: s.lora_dropout,
    target_modules: s.target,
    init_lora_weights: s.init === "lora" ? true : (s.init as "pissa"),
    base_model_name_or_path: baseModel,
    ...(task === "nlu" ? { task_type: "SEQ_CLS", modules_to_save: [...SEQ_CLS_MODULES] } : {}),
  };
}
