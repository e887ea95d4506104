// Loading a model (and optionally a peft adapter) for a CLI command on the chosen backend (WebGPU, or
// the float64 CPU backend with BALORA_BACKEND=cpu), the device's token limit, and HF model directories.
import { cp, stat } from "node:fs/promises";
import { join } from "node:path";
import { loadAdapter, readAdapterConfig } from "@balora/lora";
import { CausalLM, type LanguageModel, loadModel, type ModelConfig, readConfig, saveModel } from "@balora/models";
import * as T from "@balora/tensor";
import { CliError, type FlagSpec } from "./args.js";
import { requireDir } from "./inputs.js";

export const MODEL_FLAG = {
  type: "string",
  value: "DIR",
  required: true,
  help: "Hugging Face model directory (config.json, *.safetensors, tokenizer.json)",
} as const satisfies FlagSpec;
export const ADAPTER_FLAG = {
  type: "string",
  value: "DIR",
  help: "peft adapter directory (adapter_config.json + adapter_model.safetensors)",
} as const satisfies FlagSpec;

/** The backend BALORA_BACKEND asks for: "webgpu" (default) or "cpu" (float64, no GPU or Vulkan driver needed). */
export async function cliBackend(): Promise<T.Backend> {
  const want = (process.env.BALORA_BACKEND ?? "").trim().toLowerCase();
  if (want === "cpu") {
    const cpu = T.cpuBackend();
    T.setDefaultBackend(cpu);
    return cpu;
  }
  if (want !== "" && want !== "webgpu")
    throw new CliError(`BALORA_BACKEND=${process.env.BALORA_BACKEND} is not a backend; use cpu or webgpu`);
  try {
    return await T.initWebGPU();
  } catch (e) {
    if (e instanceof T.DeviceError) throw new CliError(`${e.message.split("\n")[0]} Or set BALORA_BACKEND=cpu to run on the CPU (slower).`);
    throw e;
  }
}

/** Checks that `dir` is a model directory and reads its config.json (cheap: no weights). */
export async function readModelConfig(dir: string, flag = "--model"): Promise<ModelConfig> {
  await requireDir(flag, dir, "a model directory (config.json + *.safetensors)");
  return readConfig(dir);
}

/** Checks that `dir` is an adapter directory with a valid adapter_config.json (cheap: no weights). */
export async function checkAdapterDir(dir: string, flag = "--adapter"): Promise<void> {
  await requireDir(flag, dir, "a peft adapter directory (adapter_config.json + adapter_model.safetensors)");
  await readAdapterConfig(dir);
}

export async function loadForCli(modelDir: string, adapterDir?: string): Promise<{ model: LanguageModel; backend: T.Backend }> {
  const backend = await cliBackend();
  const model = await loadModel(modelDir, { backend });
  if (adapterDir) await loadAdapterForCli(model, adapterDir);
  return { model, backend };
}

/**
 * Loads a peft adapter into the model; a `balora train` output (an initial_adapter/ folder beside the
 * files) gives PiSSA's residual from that initial state, so a randomized `pissa_niter_N` run reproduces
 * the base it trained on (peft, and a folder without it, re-run PiSSA instead).
 */
export async function loadAdapterForCli(model: LanguageModel, adapterDir: string): Promise<void> {
  const initialDir = join(adapterDir, INITIAL_ADAPTER_DIR);
  const hasInitial = await stat(join(initialDir, "adapter_model.safetensors")).then(
    (st) => st.isFile(),
    () => false,
  );
  await loadAdapter(model, adapterDir, hasInitial ? { initialState: initialDir } : {});
}

/** Where `balora train` writes the adapter's initial state (the teacher) inside its output folder. */
export const INITIAL_ADAPTER_DIR = "initial_adapter";

/** The cheap checks before loading (a causal LM's config, the adapter's config) for `who`; returns the model config. */
export async function checkCausal(model: string, adapter: string | undefined, who: string): Promise<ModelConfig> {
  const cfg = await readModelConfig(model);
  if (cfg.head !== "causal-lm")
    throw new CliError(`--model ${model}: ${cfg.architecture} is a classifier; ${who} needs a *ForCausalLM model`);
  if (adapter) await checkAdapterDir(adapter);
  return cfg;
}

/** Loads a causal LM (and its adapter) for a CLI command. */
export async function loadCausal(model: string, adapter: string | undefined): Promise<CausalLM> {
  const { model: m } = await loadForCli(model, adapter);
  if (!(m instanceof CausalLM)) throw new CliError(`--model ${model}: ${m.config.architecture} is not a *ForCausalLM model`);
  return m;
}

/** Refuses data whose longest sequence, at this batch size, does not fit the device (before the model loads). */
export function requireLongestFits(
  examples: { inputIds: ArrayLike<number> }[],
  cfg: ModelConfig,
  backend: T.Backend,
  batchSize: number,
): void {
  const longest = Math.max(...examples.map((e) => e.inputIds.length));
  requireTokensFit(
    "the longest sequence",
    longest,
    cfg,
    backend,
    Math.min(batchSize, examples.length),
    "lower --max-length or --batch-size",
  );
}

/** The largest storage binding of the backend in bytes (Infinity for the CPU backend). */
export function bindingLimit(backend: T.Backend): number {
  if (!(backend instanceof T.WebGPUBackend)) return Number.POSITIVE_INFINITY;
  return Math.min(backend.limits.maxStorageBufferBindingSize, backend.limits.maxBufferSize);
}

/**
 * The most tokens per sequence one forward pass of `cfg` at batch `batch` can take on a device
 * whose largest binding is `limit` bytes: each f32 activation must fit one binding, the biggest
 * being the attention scores [B, Hq, T, T] and the widest rows [B, T, max(V, I, Hq·D, H)].
 */
export function maxTokens(cfg: ModelConfig, limit: number, batch = 1): { tokens: number; why: string } {
  if (!Number.isFinite(limit)) return { tokens: Number.POSITIVE_INFINITY, why: "" };
  const elems = Math.floor(limit / 4 / batch);
  const byScores = Math.floor(Math.sqrt(elems / cfg.numHeads));
  const widths: [string, number][] = [
    [cfg.head === "causal-lm" ? "V" : "labels", cfg.head === "causal-lm" ? cfg.vocabSize : cfg.numLabels],
    ["I", cfg.intermediateSize],
    ["Hq·D", cfg.numHeads * cfg.headDim],
    ["H", cfg.hiddenSize],
  ];
  const [name, width] = widths.reduce((a, b) => (b[1] > a[1] ? b : a));
  const byRows = Math.floor(elems / width);
  const B = batch > 1 ? "B, " : "";
  const bytes = `must fit one ${limit}-byte storage binding`;
  return byScores <= byRows
    ? { tokens: byScores, why: `the attention scores [${B}Hq=${cfg.numHeads}, T, T] in f32 ${bytes}` }
    : { tokens: byRows, why: `the activations [${B}T, ${name}=${width}] in f32 ${bytes}` };
}

/** Refuses a sequence the device cannot hold, in tokens rather than bytes. `what` names it ("the prompt"). */
export function requireTokensFit(what: string, tokens: number, cfg: ModelConfig, backend: T.Backend, batch = 1, fix = ""): void {
  const most = maxTokens(cfg, bindingLimit(backend), batch);
  if (tokens <= most.tokens) return;
  throw new CliError(
    `${what} has ${tokens} tokens; this device fits at most ${most.tokens} for this model${batch > 1 ? ` at batch ${batch}` : ""} ` +
      `(${most.why})${fix ? `; ${fix}` : ""}`,
  );
}

/** Files of a model directory that are not weights or config: tokenizer and generation settings. */
const SIDE_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
  "generation_config.json",
  "chat_template.jinja",
];

export async function copySideFiles(from: string, to: string): Promise<void> {
  for (const f of SIDE_FILES) {
    try {
      await stat(join(from, f));
    } catch {
      continue;
    }
    await cp(join(from, f), join(to, f));
  }
}

/** Writes `model` as an HF directory (config, safetensors, the source's tokenizer files) into `dir`. */
export async function writeModelDir(model: LanguageModel, sourceDir: string, dir: string): Promise<void> {
  await saveModel(model, dir);
  await copySideFiles(sourceDir, dir);
}
