// A training run's settings with every default spelled out (what training_config.json records and a
// resumed run re-reads), their checks (one line naming the setting), and the step arithmetic of HF Trainer.
import type { PresetName, RegularizersConfig } from "@balora/regularizers";
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
  mask_mode: "shifted" | "unshifted" | "none" | null;
  /** Passed to resolveConfig as-is (terms of plugins, per-term schedules and options). */
  regularizers: RegularizersConfig;
  plugins: string[];
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
};

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
    fail("fields", `must be two field names [query, response], got ${JSON.stringify(s.fields)}`);
  if (!Array.isArray(s.plugins) || !s.plugins.every((p) => typeof p === "string" && p))
    fail("plugins", `must be a list of package names, got ${JSON.stringify(s.plugins)}`);
  for (const b of ["skip_invalid", "gradient_checkpointing"] as const)
    if (typeof s[b] !== "boolean") fail(b, `must be true or false, got ${JSON.stringify(s[b])}`);
  if (typeof s.regularizers !== "object" || s.regularizers === null || Array.isArray(s.regularizers))
    fail("regularizers", "must be an object (resolveConfig's fields)");
  return s;
}

/** The settings as resolveConfig takes them: the preset, then the flat overrides (unset ones left to the preset). */
export function regularizersConfig(s: TrainSettings): RegularizersConfig {
  const flat: RegularizersConfig = { ...s.regularizers, preset: s.preset };
  const put = <K extends keyof RegularizersConfig>(k: K, v: RegularizersConfig[K] | null) => {
    if (v !== null) flat[k] = v as RegularizersConfig[K];
  };
  put("lambda1", s.lambda1);
  put("lambda2", s.lambda2);
  put("lambda3", s.lambda3);
  put("k", s.k);
  put("tau", s.tau);
  put("topKEntropy", s.top_k_entropy);
  put("maskMode", s.mask_mode);
  return flat;
}

/** Optimizer steps per epoch: ceil(batches / grad_accum), the last one taking the remainder (HF). */
export const stepsPerEpoch = (examples: number, s: Pick<TrainSettings, "batch_size" | "grad_accum">): number =>
  Math.ceil(batchesPerEpoch(examples, s.batch_size) / s.grad_accum);

/** Total optimizer steps: max_steps, or epochs × steps per epoch. */
export function totalSteps(examples: number, s: Pick<TrainSettings, "batch_size" | "grad_accum" | "epochs" | "max_steps">): number {
  if (examples === 0) throw new ArgumentError("the training data has no example");
  return s.max_steps ?? s.epochs * stepsPerEpoch(examples, s);
}
