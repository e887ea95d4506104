// Reads a Hugging Face config.json into one normalised ModelConfig for the four supported families,
// resolving defaults exactly as transformers does (head_dim, kv heads, rope form, layer types).
import { ModelConfigError } from "./errors.js";

export const SUPPORTED_ARCHITECTURES = [
  "LlamaForCausalLM",
  "MistralForCausalLM",
  "GemmaForCausalLM",
  "Gemma2ForCausalLM",
  "LlamaForSequenceClassification",
  "MistralForSequenceClassification",
  "GemmaForSequenceClassification",
  "Gemma2ForSequenceClassification",
] as const;

export type Family = "llama" | "mistral" | "gemma" | "gemma2";
export type Head = "causal-lm" | "sequence-classification";
export type Activation = "silu" | "gelu_tanh" | "gelu";

export interface RopeConfig {
  type: "default" | "linear" | "llama3";
  theta: number;
  /** linear/llama3 `factor`. */
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

export interface ModelConfig {
  architecture: (typeof SUPPORTED_ARCHITECTURES)[number];
  family: Family;
  head: Head;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  activation: Activation;
  rmsNormEps: number;
  maxPositions: number;
  rope: RopeConfig;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
  /** Per layer: the sliding-window size, or 0 for full attention. */
  layerWindows: number[];
  /** Query scale: head_dim^-½, or query_pre_attn_scalar^-½ (Gemma 2). */
  attnScale: number;
  attnSoftcap: number;
  finalSoftcap: number;
  /** Gemma: norms compute x·r·(1 + w) in f32 and embeddings are scaled by √hidden. */
  gemmaNorms: boolean;
  /** Gemma 2: extra norms after attention and around the MLP. */
  sandwichNorms: boolean;
  numLabels: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
  /** torch_dtype / dtype as written in config.json (informative). */
  dtype: string | null;
  /** The parsed config.json, for writing it back unchanged. */
  raw: Record<string, unknown>;
}

type Json = Record<string, unknown>;

function num(raw: Json, key: string, file: string, fallback?: number): number {
  const v = raw[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ModelConfigError(`${file}: field "${key}" is missing`);
  }
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new ModelConfigError(`${file}: field "${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** A size or count that must be at least 1 (a 0 would build an empty or NaN-producing model). */
function positiveInt(raw: Json, key: string, file: string, fallback?: number): number {
  const v = num(raw, key, file, fallback);
  if (!Number.isInteger(v) || v < 1) throw new ModelConfigError(`${file}: field "${key}" must be a positive integer, got ${v}`);
  return v;
}

/** A value that must be > 0 (epsilons, RoPE bases and factors, scales): 0 or less gives NaN or garbage. */
function positive(raw: Json, key: string, file: string, fallback?: number): number {
  const v = num(raw, key, file, fallback);
  if (!(v > 0)) throw new ModelConfigError(`${file}: field "${key}" must be > 0, got ${v}`);
  return v;
}

/** A value that must be >= 0 (soft-caps: 0 means off). */
function nonNegative(raw: Json, key: string, file: string, fallback?: number): number {
  const v = num(raw, key, file, fallback);
  if (!(v >= 0)) throw new ModelConfigError(`${file}: field "${key}" must be >= 0 (0 turns it off), got ${v}`);
  return v;
}

function ids(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

function parseRope(raw: Json, file: string): RopeConfig {
  // transformers v5 writes `rope_parameters` {rope_type, rope_theta, ...}; older files use
  // `rope_theta` + `rope_scaling` {type|rope_type, factor, ...}. Accept both.
  const params = (raw.rope_parameters ?? raw.rope_scaling ?? null) as Json | null;
  const where = raw.rope_parameters ? "rope_parameters" : "rope_scaling";
  if (params !== null && (typeof params !== "object" || Array.isArray(params)))
    throw new ModelConfigError(`${file}: field "${where}" must be an object or null`);
  const theta =
    params?.rope_theta !== undefined && params?.rope_theta !== null
      ? positive(params, "rope_theta", `${file} ${where}`)
      : positive(raw, "rope_theta", file, 10000);
  const type = String(params?.rope_type ?? params?.type ?? "default");
  const base: RopeConfig = { type: "default", theta, factor: 1, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };
  if (type === "default") return base;
  if (type === "linear") return { ...base, type, factor: positive(params as Json, "factor", `${file} ${where}`) };
  if (type === "llama3") {
    const p = params as Json;
    const at = `${file} ${where}`;
    const lowFreqFactor = positive(p, "low_freq_factor", at);
    const highFreqFactor = positive(p, "high_freq_factor", at);
    // The blend between the two divides by (high − low).
    if (!(highFreqFactor > lowFreqFactor))
      throw new ModelConfigError(`${at}: high_freq_factor (${highFreqFactor}) must be greater than low_freq_factor (${lowFreqFactor})`);
    return {
      ...base,
      type,
      factor: positive(p, "factor", at),
      lowFreqFactor,
      highFreqFactor,
      originalMaxPositions: positiveInt(p, "original_max_position_embeddings", at),
    };
  }
  throw new ModelConfigError(`${file}: ${where} type "${type}" is not supported (supported: default, linear, llama3)`);
}

/** Normalises a parsed config.json. `file` names it in error messages. */
export function parseConfig(raw: Json, file = "config.json"): ModelConfig {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new ModelConfigError(`${file}: expected a JSON object`);
  const archs = raw.architectures;
  const arch = Array.isArray(archs) && typeof archs[0] === "string" ? archs[0] : null;
  if (!arch || !(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new ModelConfigError(
      `${file}: architecture ${arch ? `"${arch}"` : '(none: "architectures" is missing)'} is not supported; supported: ` +
        `${SUPPORTED_ARCHITECTURES.join(", ")}`,
    );
  }
  const architecture = arch as ModelConfig["architecture"];
  const family = (
    architecture.startsWith("Gemma2")
      ? "gemma2"
      : architecture.startsWith("Gemma")
        ? "gemma"
        : architecture.startsWith("Mistral")
          ? "mistral"
          : "llama"
  ) as Family;
  const head: Head = architecture.endsWith("ForCausalLM") ? "causal-lm" : "sequence-classification";
  const hiddenSize = positiveInt(raw, "hidden_size", file);
  const numHeads = positiveInt(raw, "num_attention_heads", file);
  const numKvHeads = positiveInt(raw, "num_key_value_heads", file, numHeads);
  const headDim = num(raw, "head_dim", file, hiddenSize / numHeads);
  const numLayers = positiveInt(raw, "num_hidden_layers", file);
  if (numHeads % numKvHeads !== 0)
    throw new ModelConfigError(
      `${file}: num_attention_heads (${numHeads}) must be a positive multiple of num_key_value_heads (${numKvHeads})`,
    );
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0)
    throw new ModelConfigError(
      `${file}: head_dim ${headDim} must be a positive even integer` +
        (raw.head_dim === undefined ? ` (it defaults to hidden_size / num_attention_heads = ${hiddenSize} / ${numHeads})` : ""),
    );

  const gemma = family === "gemma" || family === "gemma2";
  // Gemma v1 configs carry a legacy hidden_act "gelu" but HF runs the tanh approximation
  // unless hidden_activation says otherwise (transformers#29402).
  const actName = String(gemma ? (raw.hidden_activation ?? "gelu_pytorch_tanh") : (raw.hidden_act ?? "silu"));
  const ACTS: Record<string, Activation> = {
    silu: "silu",
    swish: "silu",
    gelu_pytorch_tanh: "gelu_tanh",
    gelu_new: "gelu_tanh",
    gelu: "gelu",
  };
  const activation = ACTS[actName];
  if (!activation)
    throw new ModelConfigError(`${file}: activation "${actName}" is not supported (supported: ${Object.keys(ACTS).join(", ")})`);

  // A window of 0 would hide every key; transformers' null means none.
  const window = raw.sliding_window === null || raw.sliding_window === undefined ? 0 : positiveInt(raw, "sliding_window", file);
  let layerWindows: number[];
  if (family === "gemma2") {
    const types = raw.layer_types as unknown;
    if (Array.isArray(types)) {
      if (types.length !== numLayers)
        throw new ModelConfigError(`${file}: layer_types has ${types.length} entries for ${numLayers} layers`);
      layerWindows = types.map((t) => (t === "sliding_attention" ? window : 0));
    } else layerWindows = Array.from({ length: numLayers }, (_, i) => (i % 2 === 0 ? window : 0));
  } else if (family === "mistral") layerWindows = Array(numLayers).fill(window);
  else layerWindows = Array(numLayers).fill(0);

  const qpas = family === "gemma2" ? positive(raw, "query_pre_attn_scalar", file, headDim) : headDim;
  const eos = ids(raw.eos_token_id);
  const bos = typeof raw.bos_token_id === "number" ? raw.bos_token_id : null;
  const pad = typeof raw.pad_token_id === "number" ? raw.pad_token_id : null;
  const numLabels = head === "sequence-classification" ? labelCount(raw, file) : 0;
  return {
    architecture,
    family,
    head,
    vocabSize: positiveInt(raw, "vocab_size", file),
    hiddenSize,
    intermediateSize: positiveInt(raw, "intermediate_size", file),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    activation,
    rmsNormEps: positive(raw, "rms_norm_eps", file, 1e-6),
    maxPositions: positiveInt(raw, "max_position_embeddings", file, 2048),
    rope: parseRope(raw, file),
    tieWordEmbeddings: typeof raw.tie_word_embeddings === "boolean" ? raw.tie_word_embeddings : gemma,
    attentionBias: raw.attention_bias === true,
    mlpBias: raw.mlp_bias === true,
    layerWindows,
    attnScale: qpas ** -0.5,
    attnSoftcap: family === "gemma2" ? nonNegative(raw, "attn_logit_softcapping", file, 0) : 0,
    finalSoftcap: family === "gemma2" ? nonNegative(raw, "final_logit_softcapping", file, 0) : 0,
    gemmaNorms: gemma,
    sandwichNorms: family === "gemma2",
    numLabels,
    bosTokenId: bos,
    eosTokenIds: eos,
    padTokenId: pad,
    dtype: typeof (raw.dtype ?? raw.torch_dtype) === "string" ? String(raw.dtype ?? raw.torch_dtype) : null,
    raw,
  };
}

function labelCount(raw: Json, file: string): number {
  if (raw.num_labels !== undefined && raw.num_labels !== null) return positiveInt(raw, "num_labels", file);
  const id2label = raw.id2label;
  if (id2label && typeof id2label === "object") return Object.keys(id2label).length;
  return 2;
}
