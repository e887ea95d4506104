// Presets (iclr2026, v5, and the lora/pissa baselines) and the resolution of a plain JSON config —
// preset, then per-term fields, then the flat CLI-style overrides — into terms with λ schedules.
import { ArgumentError } from "@balora/tensor";
import { getRegularizer } from "./registry.js";
import { type LambdaSchedule, parseSchedule } from "./schedules.js";
import type { MaskMode, Regularizer, TaskType } from "./types.js";

export const PRESETS = ["iclr2026", "v5", "lora", "pissa"] as const;
export type PresetName = (typeof PRESETS)[number];
export const DEFAULT_PRESET: PresetName = "iclr2026";
export const MASK_MODES = ["shifted", "unshifted", "none"] as const;

/** One term of a config: its weight, schedule and options (all optional; missing ones come from the preset). */
export interface TermConfig {
  /** Off when false; a term with λ = 0 is off too. */
  enabled?: boolean;
  lambda?: number;
  schedule?: LambdaSchedule | LambdaSchedule["kind"];
  options?: Record<string, unknown>;
}

/** What a training config says about the regularizers: a plain JSON-able object. */
export interface RegularizersConfig {
  preset?: PresetName;
  taskType?: TaskType;
  maskMode?: MaskMode;
  consistency?: TermConfig;
  diversity?: TermConfig;
  svd?: TermConfig;
  /** Regularizers by registered name (plugins; built-in names also work). */
  terms?: Record<string, TermConfig>;
  /** Flat overrides with the CLI's flag names: λ1..3, SVD k, temperature, top-k entropy (0 = full vocabulary). */
  lambda1?: number;
  lambda2?: number;
  lambda3?: number;
  k?: number;
  tau?: number;
  topKEntropy?: number;
}

/** A term ready to run. */
export interface ResolvedTerm {
  name: string;
  regularizer: Regularizer;
  lambda: number;
  schedule: LambdaSchedule;
  options: Record<string, unknown>;
}

export interface ResolvedConfig {
  preset: PresetName;
  taskType: TaskType;
  maskMode: MaskMode;
  /** The adapter initialisation the preset stands for ("pissa" for BA-LoRA presets and the PiSSA baseline). */
  init: "pissa" | "lora";
  /** Active terms (λ > 0 and enabled), built-ins first in the order consistency, diversity, svd. */
  terms: ResolvedTerm[];
  /** Every effective setting as JSON (for training_config.json), inactive terms included. */
  effective: Record<string, unknown>;
}

interface PresetTable {
  maskMode: MaskMode;
  init: "pissa" | "lora";
  terms: Record<"consistency" | "diversity" | "svd", Required<Omit<TermConfig, "enabled">>>;
}

const iclrTerms: PresetTable["terms"] = {
  consistency: {
    lambda: 0.025,
    schedule: { kind: "cosine", finalRatio: 0.1 },
    options: { tau: 2, reduction: "mean", nlu: "kl", adaptive: false },
  },
  diversity: { lambda: 0.005, schedule: { kind: "two_phase", offRatio: 0.2, rampRatio: 0.05 }, options: { topK: 20 } },
  svd: {
    lambda: 0.005,
    schedule: { kind: "two_phase", offRatio: 0.2, rampRatio: 0.05 },
    options: { k: 10, denominator: "frobenius", scope: "batch", method: "exact", niter: 2, oversample: 5 },
  },
};

const off = (t: PresetTable["terms"]): PresetTable["terms"] => ({
  consistency: { ...t.consistency, lambda: 0 },
  diversity: { ...t.diversity, lambda: 0 },
  svd: { ...t.svd, lambda: 0 },
});

/** The DESIGN.md §3 table. `lora` and `pissa` are baselines: every λ is 0 (the options are iclr2026's, for overrides). */
const TABLE: Record<PresetName, PresetTable> = {
  iclr2026: { maskMode: "shifted", init: "pissa", terms: iclrTerms },
  v5: {
    maskMode: "none",
    init: "pissa",
    terms: {
      consistency: {
        lambda: 1e-4,
        schedule: { kind: "constant" },
        options: { tau: 1, reduction: "batchmean", nlu: "mse", adaptive: false },
      },
      diversity: { lambda: 3e-4, schedule: { kind: "constant" }, options: { topK: 0 } },
      svd: {
        lambda: 1e-4,
        schedule: { kind: "constant" },
        options: { k: 3, denominator: "sum", scope: "sequence", method: "exact", niter: 2, oversample: 5 },
      },
    },
  },
  lora: { maskMode: "shifted", init: "lora", terms: off(iclrTerms) },
  pissa: { maskMode: "shifted", init: "pissa", terms: off(iclrTerms) },
};

const BUILT_IN_TERMS = ["consistency", "diversity", "svd"] as const;
const CONFIG_KEYS = [
  "preset",
  "taskType",
  "maskMode",
  ...BUILT_IN_TERMS,
  "terms",
  "lambda1",
  "lambda2",
  "lambda3",
  "k",
  "tau",
  "topKEntropy",
];
const TERM_KEYS = ["enabled", "lambda", "schedule", "options"];

/** The preset's settings as a config object (a copy). */
export function presetConfig(name: PresetName): RegularizersConfig {
  if (!PRESETS.includes(name)) throw new ArgumentError(`preset must be one of ${PRESETS.join(", ")}, got ${JSON.stringify(name)}`);
  return JSON.parse(JSON.stringify({ preset: name, maskMode: TABLE[name].maskMode, ...TABLE[name].terms }));
}

function num(field: string, v: unknown, test: (x: number) => boolean, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v) || !test(v))
    throw new ArgumentError(`${field}: must be ${what}, got ${JSON.stringify(v)}`);
  return v;
}

function termOf(field: string, raw: unknown): TermConfig {
  if (!raw || typeof raw !== "object" || Array.isArray(raw))
    throw new ArgumentError(`${field}: must be an object, got ${JSON.stringify(raw)}`);
  for (const k of Object.keys(raw))
    if (!TERM_KEYS.includes(k)) throw new ArgumentError(`${field}.${k}: unknown field (fields: ${TERM_KEYS.join(", ")})`);
  const t = raw as TermConfig;
  if (t.enabled !== undefined && typeof t.enabled !== "boolean") throw new ArgumentError(`${field}.enabled: must be true or false`);
  if (t.lambda !== undefined) num(`${field}.lambda`, t.lambda, (x) => x >= 0, "a number ≥ 0");
  if (t.options !== undefined && (typeof t.options !== "object" || t.options === null || Array.isArray(t.options)))
    throw new ArgumentError(`${field}.options: must be an object`);
  return t;
}

/**
 * Resolves a config into active terms. Order of precedence: the preset (default iclr2026), then
 * `consistency`/`diversity`/`svd`/`terms.<name>` fields, then the flat overrides (`lambda1..3`, `k`,
 * `tau`, `topKEntropy`, `maskMode`). Unknown fields and bad values throw one line naming the field;
 * options are checked by each regularizer's `validate` when it has one.
 */
export function resolveConfig(config: RegularizersConfig = {}): ResolvedConfig {
  if (!config || typeof config !== "object" || Array.isArray(config)) throw new ArgumentError("regularizers config: must be an object");
  for (const k of Object.keys(config))
    if (!CONFIG_KEYS.includes(k)) throw new ArgumentError(`regularizers config: unknown field "${k}" (fields: ${CONFIG_KEYS.join(", ")})`);
  const preset = config.preset ?? DEFAULT_PRESET;
  if (!PRESETS.includes(preset)) throw new ArgumentError(`preset: must be one of ${PRESETS.join(", ")}, got ${JSON.stringify(preset)}`);
  const taskType = config.taskType ?? "nlg";
  if (taskType !== "nlg" && taskType !== "nlu")
    throw new ArgumentError(`taskType: must be "nlg" or "nlu", got ${JSON.stringify(taskType)}`);
  const maskMode = config.maskMode ?? TABLE[preset].maskMode;
  if (!MASK_MODES.includes(maskMode))
    throw new ArgumentError(`maskMode: must be one of ${MASK_MODES.join(", ")}, got ${JSON.stringify(maskMode)}`);
  const table = TABLE[preset];
  type Merged = { enabled: boolean; lambda: number; schedule: LambdaSchedule; options: Record<string, unknown> };
  const merged = new Map<string, Merged>();
  const apply = (name: string, field: string, raw: unknown) => {
    const t = termOf(field, raw);
    const base = merged.get(name) ?? { enabled: true, lambda: 0, schedule: { kind: "constant" as const }, options: {} };
    merged.set(name, {
      enabled: t.enabled ?? base.enabled,
      lambda: t.lambda ?? base.lambda,
      schedule: t.schedule === undefined ? base.schedule : parseScheduleField(`${field}.schedule`, t.schedule),
      options: { ...base.options, ...(t.options ?? {}) },
    });
  };
  for (const name of BUILT_IN_TERMS) apply(name, `preset ${preset}.${name}`, table.terms[name]);
  for (const name of BUILT_IN_TERMS) if (config[name] !== undefined) apply(name, name, config[name]);
  if (config.terms !== undefined) {
    if (!config.terms || typeof config.terms !== "object" || Array.isArray(config.terms))
      throw new ArgumentError("terms: must be an object");
    for (const [name, raw] of Object.entries(config.terms)) apply(name, `terms.${name}`, raw);
  }
  const set = (name: string, patch: Partial<Merged> & { options?: Record<string, unknown> }) => {
    const m = merged.get(name)!;
    merged.set(name, { ...m, ...patch, options: { ...m.options, ...(patch.options ?? {}) } });
  };
  if (config.lambda1 !== undefined) set("consistency", { lambda: num("lambda1", config.lambda1, (x) => x >= 0, "a number ≥ 0") });
  if (config.lambda2 !== undefined) set("diversity", { lambda: num("lambda2", config.lambda2, (x) => x >= 0, "a number ≥ 0") });
  if (config.lambda3 !== undefined) set("svd", { lambda: num("lambda3", config.lambda3, (x) => x >= 0, "a number ≥ 0") });
  if (config.k !== undefined) set("svd", { options: { k: num("k", config.k, (x) => Number.isInteger(x) && x >= 1, "an integer ≥ 1") } });
  if (config.tau !== undefined) set("consistency", { options: { tau: num("tau", config.tau, (x) => x > 0, "a number > 0") } });
  if (config.topKEntropy !== undefined)
    set("diversity", {
      options: {
        topK: num("topKEntropy", config.topKEntropy, (x) => Number.isInteger(x) && x >= 0, "an integer ≥ 0 (0 = full vocabulary)"),
      },
    });
  const terms: ResolvedTerm[] = [];
  const effectiveTerms: Record<string, unknown> = {};
  for (const [name, m] of merged) {
    const regularizer = getRegularizer(name);
    const options = { ...regularizer.defaults, ...m.options };
    regularizer.validate?.(options, `${name}.options`);
    effectiveTerms[name] = { enabled: m.enabled, lambda: m.lambda, schedule: m.schedule, options };
    if (m.enabled && m.lambda > 0) terms.push({ name, regularizer, lambda: m.lambda, schedule: m.schedule, options });
  }
  return {
    preset,
    taskType,
    maskMode,
    init: table.init,
    terms,
    effective: { preset, taskType, maskMode, init: table.init, terms: effectiveTerms },
  };
}

function parseScheduleField(field: string, raw: unknown): LambdaSchedule {
  try {
    return parseSchedule(raw);
  } catch (e) {
    throw new ArgumentError(`${field}: ${(e as Error).message.replace(/^λ schedule:? /, "")}`);
  }
}
