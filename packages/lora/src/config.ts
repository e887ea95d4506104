// LoraConfig with peft's field names and semantics (snake_case, as in adapter_config.json), its
// validation, and the resolution of r / alpha / scaling per module (rank_pattern, alpha_pattern, rsLoRA).
import { ArgumentError } from "@balora/tensor";

export type InitLoraWeights = boolean | "gaussian" | "pissa" | `pissa_niter_${number}`;

/** The LoRA fields of peft's LoraConfig that balora supports (adapter_config.json names). */
export interface LoraConfig {
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** Suffix list, a regex matched with full-match against module paths, or "all-linear". */
  target_modules: string[] | string | null;
  exclude_modules: string[] | string | null;
  use_rslora: boolean;
  init_lora_weights: InitLoraWeights;
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  layers_to_transform: number[] | number | null;
  layers_pattern: string[] | string | null;
  bias: "none";
  use_dora: boolean;
  fan_in_fan_out: false;
  /** Layers trained in full and saved beside the adapter (peft's modules_to_save; Linear layers only). */
  modules_to_save: string[] | null;
  task_type: string | null;
  base_model_name_or_path: string | null;
  revision: string | null;
  inference_mode: boolean;
  /** balora extension: the adapter variant by registered name ("lora", "dora", or a plugin). */
  variant?: string;
}

export const DEFAULT_LORA_CONFIG: LoraConfig = {
  r: 8,
  lora_alpha: 8,
  lora_dropout: 0,
  target_modules: null,
  exclude_modules: null,
  use_rslora: false,
  init_lora_weights: true,
  rank_pattern: {},
  alpha_pattern: {},
  layers_to_transform: null,
  layers_pattern: null,
  bias: "none",
  use_dora: false,
  fan_in_fan_out: false,
  modules_to_save: null,
  task_type: "CAUSAL_LM",
  base_model_name_or_path: null,
  revision: null,
  inference_mode: false,
};

/** peft's default targets when target_modules is null (llama, mistral, gemma, gemma2). */
export const DEFAULT_TARGETS = ["q_proj", "v_proj"];

const fail = (field: string, msg: string): never => {
  throw new ArgumentError(`LoraConfig.${field}: ${msg}`);
};

const isPissa = (v: unknown): v is "pissa" | `pissa_niter_${number}` => typeof v === "string" && /^pissa(_niter_\d+)?$/.test(v);

/** Fills defaults and validates; unsupported values get one clear error naming the field. */
export function loraConfig(partial: Partial<LoraConfig> & Record<string, unknown> = {}): LoraConfig {
  const c = { ...DEFAULT_LORA_CONFIG, ...partial } as LoraConfig & Record<string, unknown>;
  if (!Number.isInteger(c.r) || c.r <= 0) fail("r", `must be a positive integer, got ${c.r}`);
  if (typeof c.lora_alpha !== "number" || !Number.isFinite(c.lora_alpha)) fail("lora_alpha", `must be a number, got ${c.lora_alpha}`);
  if (!(c.lora_dropout >= 0 && c.lora_dropout < 1)) fail("lora_dropout", `must be in [0, 1), got ${c.lora_dropout}`);
  const init = c.init_lora_weights;
  if (!(typeof init === "boolean" || init === "gaussian" || isPissa(init)))
    fail("init_lora_weights", `"${String(init)}" is not supported (supported: true, false, "gaussian", "pissa", "pissa_niter_<N>")`);
  if (c.bias !== "none") fail("bias", `only "none" is supported, got "${c.bias}"`);
  if (c.fan_in_fan_out) fail("fan_in_fan_out", "true is only for GPT-2 Conv1D layers, which balora does not have");
  const mts = c.modules_to_save as unknown;
  if (mts !== null && !(Array.isArray(mts) && mts.every((n) => typeof n === "string" && n !== "")))
    fail("modules_to_save", `must be null or a list of module names, got ${JSON.stringify(mts)}`);
  for (const k of ["lora_bias", "use_qalora", "use_alora"]) if (c[k]) fail(k, "is not supported");
  if (c.use_dora && c.variant && c.variant !== "dora") fail("use_dora", `conflicts with variant "${c.variant}"`);
  for (const [k, v] of Object.entries(c.rank_pattern ?? {}))
    if (!Number.isInteger(v) || v <= 0) fail("rank_pattern", `"${k}" must map to a positive integer, got ${v}`);
  for (const [k, v] of Object.entries(c.alpha_pattern ?? {}))
    if (typeof v !== "number") fail("alpha_pattern", `"${k}" must map to a number, got ${v}`);
  const lt = c.layers_to_transform;
  if (lt !== null && !(Number.isInteger(lt) || (Array.isArray(lt) && lt.every((x) => Number.isInteger(x)))))
    fail("layers_to_transform", `must be an integer or a list of integers, got ${JSON.stringify(lt)}`);
  if (lt !== null && typeof c.target_modules === "string" && c.target_modules !== "all-linear")
    fail("layers_to_transform", "cannot be used with a regex target_modules string (as in peft)");
  return c;
}

/** peft's get_pattern_key: the first pattern key k (in order) with `(.*\.)?(k)$` matching the path. */
export function patternKey(keys: string[], path: string): string | null {
  for (const k of keys) if (new RegExp(`^(.*\\.)?(${pyRegex(k)})$`).test(path)) return k;
  return null;
}

/** Python `re` syntax that JavaScript spells differently (named groups). */
export const pyRegex = (p: string): string => p.replace(/\(\?P</g, "(?<").replace(/\(\?P=(\w+)\)/g, "\\k<$1>");

export interface ModuleLoraParams {
  r: number;
  alpha: number;
  scaling: number;
}

/** r, alpha and the scaling s = alpha/r (alpha/√r with rsLoRA) for one module path. */
export function resolveModuleParams(c: LoraConfig, path: string): ModuleLoraParams {
  const rk = patternKey(Object.keys(c.rank_pattern), path);
  const ak = patternKey(Object.keys(c.alpha_pattern), path);
  const r = rk !== null ? c.rank_pattern[rk] : c.r;
  const alpha = ak !== null ? c.alpha_pattern[ak] : c.lora_alpha;
  return { r, alpha, scaling: c.use_rslora ? alpha / Math.sqrt(r) : alpha / r };
}

/** The variant a config selects. */
export const variantOf = (c: LoraConfig): string => c.variant ?? (c.use_dora ? "dora" : "lora");
