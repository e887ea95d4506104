// Loads a Hugging Face model directory (config.json + safetensors, single or sharded; a path, URL, Files
// or memory) into a model: names and shapes checked before any upload; 16-bit weights stay 16-bit.
import {
  type DirectoryInput,
  type Dtype,
  float32ToBf16,
  float32ToF16,
  openCheckpoint,
  openDirectory,
  readText,
  saveCheckpoint,
  type TensorToWrite,
  writeFiles,
} from "@balora/safetensors";
import * as T from "@balora/tensor";
import { type ModelConfig, parseConfig } from "./config.js";
import { ModelConfigError, ModelWeightsError } from "./errors.js";
import { CausalLM, type LanguageModel, SequenceClassifier, type WeightSource } from "./model.js";

export interface LoadOptions {
  backend?: T.Backend;
  /**
   * Device dtype of floating-point weights: "auto" keeps the checkpoint's (F32 → f32, BF16 → bf16,
   * F16 → f16); "f32" upcasts everything (needed to train base weights).
   */
  dtype?: "auto" | "f32";
  /** Mark f32 weights requiresGrad (default false: frozen, as for adapter training). */
  trainable?: boolean;
}

const DEVICE_DTYPE: Partial<Record<Dtype, T.DType>> = { F32: "f32", BF16: "bf16", F16: "f16" };

/** Checkpoint tensors transformers ignores (non-persistent buffers saved by old versions). */
const IGNORED = /(^|\.)rotary_emb\.inv_freq$/;

/** Reads and normalises `config.json` of a model directory (a path, URL, Files or files in memory). */
export async function readConfig(dir: DirectoryInput): Promise<ModelConfig> {
  const directory = openDirectory(dir);
  const file = directory.labelOf("config.json");
  const text = await readText(directory, "config.json");
  if (text === undefined)
    throw new ModelConfigError(`${file}: not found; a model directory needs config.json and *.safetensors (a Hugging Face checkpoint)`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ModelConfigError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  return parseConfig(raw as Record<string, unknown>, file);
}

/** Builds the module tree for a config with weights from `src`. */
export function buildModel(cfg: ModelConfig, src: WeightSource, backend: T.Backend): LanguageModel {
  return cfg.head === "causal-lm" ? new CausalLM(cfg, src, backend) : new SequenceClassifier(cfg, src, backend);
}

/** Every weight the architecture needs, with its shape (tied lm_head excluded), in module order. */
export function expectedWeights(cfg: ModelConfig): Map<string, number[]> {
  const want = new Map<string, number[]>();
  const cpu = T.cpuBackend();
  const dummy = new Map<number, T.Tensor>();
  const m = buildModel(
    cfg,
    (name, shape) => {
      want.set(name, shape);
      const rank = shape.length;
      if (!dummy.has(rank)) dummy.set(rank, T.zeros(Array(rank).fill(1), { backend: cpu }));
      return dummy.get(rank)!;
    },
    cpu,
  );
  m.model.invFreq.dispose();
  for (const t of dummy.values()) t.dispose();
  return want;
}

const list = (xs: string[], n = 8) => (xs.length <= n ? xs.join(", ") : `${xs.slice(0, n).join(", ")} and ${xs.length - n} more`);

/**
 * Loads a model directory: a path (Node), a URL (fetched, tensor by tensor with Range requests), Files
 * (a picked folder) or files in memory (a Map of name → bytes). Throws ModelConfigError /
 * ModelWeightsError / SafetensorsFormatError naming what is wrong.
 */
export async function loadModel(dir: DirectoryInput, opts: LoadOptions = {}): Promise<LanguageModel> {
  const directory = openDirectory(dir);
  const cfg = await readConfig(directory);
  const backend = opts.backend ?? T.getDefaultBackend();
  const ckpt = await openCheckpoint(directory);
  try {
    const want = expectedWeights(cfg);
    const problems: string[] = [];
    const missing = [...want.keys()].filter((n) => !ckpt.has(n));
    if (missing.length) problems.push(`missing ${list(missing)}`);
    const tiedHead = cfg.tieWordEmbeddings && cfg.head === "causal-lm";
    const unexpected = ckpt.names.filter((n) => !want.has(n) && !IGNORED.test(n) && !(tiedHead && n === "lm_head.weight"));
    if (unexpected.length) problems.push(`unexpected ${list(unexpected)}`);
    for (const [name, shape] of want) {
      if (!ckpt.has(name)) continue;
      const info = ckpt.info(name);
      if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i]))
        problems.push(`${name} has shape [${info.shape.join(",")}], the config needs [${shape.join(",")}]`);
      if (!DEVICE_DTYPE[info.dtype]) problems.push(`${name} has dtype ${info.dtype} (supported: F32, BF16, F16)`);
    }
    if (problems.length)
      throw new ModelWeightsError(
        `${directory.label}: the checkpoint does not fit ${cfg.architecture} as configured in config.json: ${problems.join("; ")}`,
      );

    const loaded = new Map<string, T.Tensor>();
    try {
      for (const name of want.keys()) {
        const t = await ckpt.readTensor(name);
        const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
        let dtype = DEVICE_DTYPE[t.dtype]!;
        let tensor = T.tensorFromBytes(bytes, dtype, t.shape, { backend });
        if (opts.dtype === "f32" && dtype !== "f32") {
          const up = T.cast(tensor, "f32");
          tensor.dispose();
          tensor = up;
          dtype = "f32";
        }
        tensor.name = name;
        tensor.requiresGrad = !!opts.trainable && dtype === "f32";
        loaded.set(name, T.keep(tensor));
      }
    } catch (e) {
      for (const t of loaded.values()) t.dispose();
      throw e;
    }
    return buildModel(cfg, (name) => loaded.get(name)!, backend);
  } finally {
    await ckpt.close();
  }
}

const SAFETENSORS_DTYPE: Record<T.DType, Dtype> = { f32: "F32", bf16: "BF16", f16: "F16", i32: "I32" };

/**
 * Writes the model as an HF directory (Node): config.json (the loaded one, with `extraConfig` merged
 * in) and safetensors (sharded above `maxShardSize`). Tied lm_head weights are not written, like HF.
 */
export async function saveModel(
  model: LanguageModel,
  dir: string,
  opts: { maxShardSize?: number | string; extraConfig?: Record<string, unknown> } = {},
): Promise<void> {
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, t] of model.namedParameters()) {
    const dtype = SAFETENSORS_DTYPE[t.dtype];
    tensors.set(name, {
      dtype,
      shape: t.shape,
      data: async () => {
        const v = await t.data();
        if (dtype === "BF16" || dtype === "F16") return (dtype === "BF16" ? float32ToBf16 : float32ToF16)(Float32Array.from(v));
        return dtype === "I32" ? Int32Array.from(v) : Float32Array.from(v);
      },
    } as TensorToWrite);
  }
  await saveCheckpoint(dir, tensors, { maxShardSize: opts.maxShardSize });
  const config = { ...model.config.raw, ...opts.extraConfig };
  await writeFiles(dir, { "config.json": `${JSON.stringify(config, null, 2)}\n` });
}
