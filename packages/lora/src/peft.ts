// PEFT adapter directories: adapter_config.json (peft's field names, sorted, indent 2) and
// adapter_model.safetensors (`base_model.model.<path>.lora_A.weight`, F32), written so Python peft
// loads them, and read from peft's output (a path, URL, Files or memory); PiSSA → LoRA on save.
import {
  type Directory,
  type DirectoryInput,
  openDirectory,
  openSafetensors,
  PyFloat,
  pythonJsonDump,
  readText,
  serializeSafetensors,
  type TensorToWrite,
  writeFiles,
} from "@balora/safetensors";
import * as T from "@balora/tensor";
import { ArgumentError, BaloraError } from "@balora/tensor";
import { type InitLoraWeights, type LoraConfig, loraConfig, resolveModuleParams, variantOf } from "./config.js";
import { adapterConfigs, deleteAdapter, injectAdapter, loraLayers, requireAdapters, savedModules, setAdapter } from "./inject.js";
import type { SavedModuleCopy } from "./modules-to-save.js";
import { setResidual, snapshotInitial } from "./pissa.js";
import type { LoraLinear } from "./layer.js";
import { type AdapterState, getVariant } from "./variant.js";
import { LORA_A, LORA_B } from "./variants/lora.js";

/** An adapter directory that cannot be loaded: missing files, keys or shapes that do not fit. */
export class AdapterFormatError extends BaloraError {
  override name = "AdapterFormatError";
}

const PREFIX = "base_model.model.";
export const CONFIG_FILE = "adapter_config.json";
export const WEIGHTS_FILE = "adapter_model.safetensors";

export interface SaveAdapterOptions {
  /** Which adapter (default "default"; it goes to `dir`, any other name to `dir/<name>`). */
  adapterName?: string;
  /**
   * Save a PiSSA adapter as plain LoRA for the ORIGINAL base (A' = [A; A0], B' = [B, −B0], r and alpha
   * doubled, ×√2 alpha with rsLoRA), like peft's path_initial_model_for_weight_conversion.
   */
  convertPissaToLora?: boolean;
  baseModelNameOrPath?: string;
  /**
   * `init_lora_weights` to write (default true: load the tensors as they are). A run that PiSSA-initialised
   * the adapter in memory writes "pissa" like peft's save_pretrained, so loading it onto the ORIGINAL base
   * recomputes the residual first (peft and balora both do).
   */
  initLoraWeights?: InitLoraWeights;
}

/** The modules that carry adapter `name`, with their per-module r and alpha. */
function carriers(model: T.Module, name: string): { path: string; layer: LoraLinear; r: number; alpha: number }[] {
  return loraLayers(model)
    .filter(([, l]) => l.adapters.has(name))
    .map(([path, layer]) => ({ path, layer, r: layer.adapters.get(name)!.r, alpha: layer.adapters.get(name)!.alpha }));
}

/**
 * adapter_config.json for the adapter as it is injected: targets and patterns are written as exact
 * module paths where needed, so any peft version resolves the same modules, ranks and alphas.
 */
function exportConfig(
  model: T.Module,
  name: string,
  c: LoraConfig,
  convert: boolean,
  base: string | null,
  init: InitLoraWeights,
): Record<string, unknown> {
  const mods = carriers(model, name);
  const factor = convert ? 2 : 1;
  const alphaFactor = convert ? (c.use_rslora ? Math.SQRT2 : 2) : 1;
  // Patterns: one full-path key per module that deviates from r / alpha (no two keys can match one module).
  const rank: Record<string, number> = {};
  const alpha: Record<string, number> = {};
  for (const m of mods) {
    if (m.r !== c.r) rank[m.path] = m.r * factor;
    if (m.alpha !== c.lora_alpha) alpha[m.path] = m.alpha * alphaFactor;
  }
  // Targets: the user's list or regex when it selects exactly these modules with peft's rules;
  // otherwise the exact paths (which bypass layers_to_transform, and make exclude_modules unnecessary).
  const paths = mods.map((m) => m.path).sort();
  const simple =
    c.exclude_modules === null &&
    (Array.isArray(c.target_modules) || (typeof c.target_modules === "string" && c.target_modules.toLowerCase() !== "all-linear"));
  const targets = simple ? c.target_modules : paths;
  return {
    alpha_pattern: alpha,
    base_model_name_or_path: base ?? c.base_model_name_or_path,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: init,
    layers_pattern: simple ? c.layers_pattern : null,
    layers_to_transform: simple ? c.layers_to_transform : null,
    lora_alpha: convert && c.use_rslora ? new PyFloat(c.lora_alpha * alphaFactor) : c.lora_alpha * alphaFactor,
    lora_dropout: new PyFloat(c.lora_dropout),
    modules_to_save: c.modules_to_save,
    peft_type: "LORA",
    r: c.r * factor,
    rank_pattern: rank,
    revision: null,
    target_modules: Array.isArray(targets) ? [...targets].sort() : targets,
    task_type: c.task_type,
    use_dora: variantOf(c) === "dora",
    use_rslora: c.use_rslora,
    ...(variantOf(c) !== "lora" && variantOf(c) !== "dora" ? { balora_variant: variantOf(c) } : {}),
  };
}

/** A peft adapter's two files: adapter_config.json's text and adapter_model.safetensors' bytes (a DirectoryInput). */
export type AdapterFiles = {
  "adapter_config.json": string;
  "adapter_model.safetensors": Uint8Array<ArrayBuffer>;
};

/**
 * Adapter `name` in peft's format, as the bytes of its two files (what saveAdapter writes): a page can
 * offer them as downloads, and loadAdapter reads them back as a directory in memory.
 */
export function adapterFiles(model: T.Module, opts: SaveAdapterOptions = {}): Promise<AdapterFiles> {
  return encodeAdapter(model, opts, "adapterFiles");
}

async function encodeAdapter(model: T.Module, opts: SaveAdapterOptions, caller: string): Promise<AdapterFiles> {
  const name = opts.adapterName ?? "default";
  const c = adapterConfigs(model).get(name);
  if (!c)
    throw new ArgumentError(
      `${caller}: adapter "${name}" does not exist (adapters: ${[...adapterConfigs(model).keys()].join(", ") || "none"})`,
    );
  const convert = !!opts.convertPissaToLora;
  if (convert && c.use_rslora && (Object.keys(c.rank_pattern).length || Object.keys(c.alpha_pattern).length))
    throw new ArgumentError(
      `${caller}: converting PiSSA to LoRA is not possible with use_rslora together with rank_pattern/alpha_pattern (as in peft)`,
    );
  const tensors = new Map<string, TensorToWrite>();
  for (const { path, layer } of carriers(model, name)) {
    const st = layer.adapters.get(name)!;
    let params = st.params;
    if (convert) {
      if (!st.initial) throw new ArgumentError(`${caller}: adapter "${name}" at ${path} was not PiSSA-initialised; nothing to convert`);
      const init = st.initial;
      params = T.noGrad(() => ({
        ...st.params,
        [LORA_A]: T.concat([st.params[LORA_A], init[LORA_A]], 0),
        [LORA_B]: T.concat([st.params[LORA_B], T.neg(init[LORA_B])], 1),
      }));
    }
    for (const [key, t] of Object.entries(params)) {
      const data = Float32Array.from(await t.data());
      tensors.set(`${PREFIX}${path}.${key}`, { dtype: "F32", shape: t.shape, data });
      if (convert && t !== st.params[key]) t.dispose();
    }
  }
  // modules_to_save copies: the full layer under its own path (peft drops the wrapper's infix on save).
  for (const [path, w] of savedModules(model)) {
    const st = w.copies.get(name);
    if (!st) continue;
    for (const [key, t] of Object.entries(st.params))
      tensors.set(`${PREFIX}${path}.${key}`, { dtype: "F32", shape: t.shape, data: Float32Array.from(await t.data()) });
  }
  const weights = await serializeSafetensors(tensors, { metadata: { format: "pt" } });
  const init = convert ? true : (opts.initLoraWeights ?? true);
  const exported = exportConfig(model, name, c, convert, opts.baseModelNameOrPath ?? null, init);
  const config = pythonJsonDump(exported as never, 0, { sortKeys: true });
  return { [CONFIG_FILE]: config, [WEIGHTS_FILE]: weights };
}

/** Writes adapter `name` in peft's format (Node); files appear atomically (temp name, then rename). */
export async function saveAdapter(model: T.Module, dir: string, opts: SaveAdapterOptions = {}): Promise<string> {
  const name = opts.adapterName ?? "default";
  const files = await encodeAdapter(model, opts, "saveAdapter");
  return writeFiles(
    dir,
    new Map<string, string | Uint8Array>([
      [WEIGHTS_FILE, files[WEIGHTS_FILE]],
      [CONFIG_FILE, files[CONFIG_FILE]],
    ]),
    {
      subdirectory: name === "default" ? undefined : name,
    },
  );
}

/**
 * Reads adapter_config.json from an adapter directory (a path, URL, Files or files in memory) into a
 * LoraConfig (peft's fields; unknown ones ignored, like peft ≥ 0.13).
 */
export async function readAdapterConfig(dir: DirectoryInput): Promise<LoraConfig> {
  const directory = openDirectory(dir);
  const file = directory.labelOf(CONFIG_FILE);
  const text = await readText(directory, CONFIG_FILE);
  if (text === undefined)
    throw new AdapterFormatError(`${file}: not found; an adapter directory needs adapter_config.json and adapter_model.safetensors`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new AdapterFormatError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  if (raw.peft_type !== "LORA")
    throw new AdapterFormatError(`${file}: peft_type is ${JSON.stringify(raw.peft_type)}; only LoRA adapters ("LORA") are supported`);
  const pick = (k: string, d: unknown) => (raw[k] === undefined ? d : raw[k]);
  const variant = typeof raw.balora_variant === "string" ? raw.balora_variant : undefined;
  const cfg: Partial<LoraConfig> & Record<string, unknown> = {
    r: pick("r", 8) as number,
    lora_alpha: pick("lora_alpha", 8) as number,
    lora_dropout: pick("lora_dropout", 0) as number,
    target_modules: pick("target_modules", null) as LoraConfig["target_modules"],
    exclude_modules: pick("exclude_modules", null) as LoraConfig["exclude_modules"],
    use_rslora: !!raw.use_rslora,
    use_dora: !!raw.use_dora,
    init_lora_weights: pick("init_lora_weights", true) as LoraConfig["init_lora_weights"],
    rank_pattern: (pick("rank_pattern", {}) ?? {}) as Record<string, number>,
    alpha_pattern: (pick("alpha_pattern", {}) ?? {}) as Record<string, number>,
    layers_to_transform: pick("layers_to_transform", null) as LoraConfig["layers_to_transform"],
    layers_pattern: pick("layers_pattern", null) as LoraConfig["layers_pattern"],
    bias: pick("bias", "none") as "none",
    fan_in_fan_out: pick("fan_in_fan_out", false) as false,
    modules_to_save: pick("modules_to_save", null) as string[] | null,
    task_type: pick("task_type", null) as string | null,
    base_model_name_or_path: pick("base_model_name_or_path", null) as string | null,
    lora_bias: !!raw.lora_bias,
    ...(variant ? { variant } : {}),
  };
  try {
    return loraConfig(cfg);
  } catch (e) {
    throw new AdapterFormatError(`${file}: ${(e as Error).message}`);
  }
}

export interface LoadAdapterOptions {
  adapterName?: string;
  /** Make the loaded tensors trainable (default false). */
  trainable?: boolean;
  /** Activate it (default true). */
  activate?: boolean;
  /**
   * The adapter's initial state (a peft adapter directory, e.g. `balora train`'s OUT/initial_adapter).
   * With a PiSSA config the base becomes the residual W − s·B₀A₀ of these tensors instead of PiSSA
   * being re-run, so a randomized (`pissa_niter_N`) run gets back the residual it trained on; the
   * initial state is also the teacher's (as after `loadInitialState`). Ignored for other inits.
   */
  initialState?: DirectoryInput;
}

/**
 * Loads a peft adapter directory (a path, URL, Files, files in memory such as adapterFiles' result)
 * into `model`: injects the layers its config targets, then checks the tensors (every expected key
 * present, none unexpected, shapes fitting the base) and copies them in.
 */
export async function loadAdapter(model: T.Module, dir: DirectoryInput, opts: LoadAdapterOptions = {}): Promise<void> {
  const name = opts.adapterName ?? "default";
  const directory = openDirectory(dir);
  if (!(await directory.isDirectory())) throw new AdapterFormatError(`${directory.label}: not an adapter directory`);
  const config = await readAdapterConfig(directory);
  const weights = await directory.open(WEIGHTS_FILE);
  if (!weights) throw await missingWeights(directory);
  const init = config.init_lora_weights;
  const residualFromInitial = typeof init === "string" && init.startsWith("pissa") && opts.initialState !== undefined;
  let injected: string[];
  try {
    // peft re-runs PiSSA when a config still says so (it mutates the base): do the same, unless the
    // initial state is given (then the residual comes from it, below).
    injected = injectAdapter(model, residualFromInitial ? { ...config, init_lora_weights: "gaussian" } : config, {
      adapterName: name,
      activate: false,
    }).targets;
    if (residualFromInitial) adapterConfigs(model).set(name, config);
  } catch (e) {
    await weights.close();
    throw new AdapterFormatError(`${directory.labelOf(CONFIG_FILE)}: ${(e as Error).message}`);
  }
  try {
    if (residualFromInitial) {
      await loadInitialState(model, opts.initialState!, { adapterName: name });
      for (const path of injected) {
        const layer = model.getSubmodule(path) as LoraLinear;
        const st = layer.adapters.get(name)!;
        setResidual(layer, st, st.initial![LORA_B], st.initial![LORA_A]);
      }
    }
    await copyWeights(model, name, config, injected, directory, weights, (st) => st.params);
  } catch (e) {
    deleteAdapter(model, name); // leave the model as it was
    throw e;
  }
  for (const [, l] of loraLayers(model)) {
    const st = l.adapters.get(name);
    if (st) for (const t of Object.values(st.params)) t.requiresGrad = !!opts.trainable;
  }
  for (const [, w] of savedModules(model)) {
    const st = w.copies.get(name);
    if (st) for (const t of Object.values(st.params)) t.requiresGrad = !!opts.trainable;
  }
  if (opts.activate ?? true) setAdapter(model, name);
}

/**
 * Reads an adapter's weights file and copies each tensor into `into(state)` of its layer, after
 * checking every expected key is present, none is unexpected, and shapes and dtypes fit the base.
 */
async function copyWeights(
  model: T.Module,
  name: string,
  config: LoraConfig,
  paths: string[],
  directory: Directory,
  weights: NonNullable<Awaited<ReturnType<Directory["open"]>>>,
  into: (st: AdapterState | SavedModuleCopy) => Record<string, T.Tensor>,
): Promise<void> {
  const file = await openSafetensors(weights);
  try {
    const variant = getVariant(variantOf(config));
    const expected = new Map<string, { state: AdapterState | SavedModuleCopy; backend: T.Backend; key: string; shape: number[] }>();
    for (const path of paths) {
      const layer = model.getSubmodule(path) as LoraLinear;
      const { r } = resolveModuleParams(config, path);
      const state = layer.adapters.get(name)!;
      const backend = layer.base_layer.weight.backend;
      for (const [key, shape] of Object.entries(variant.shapes(layer.outFeatures, layer.inFeatures, r)))
        expected.set(`${PREFIX}${path}.${key}`, { state, backend, key, shape });
    }
    for (const [path, w] of savedModules(model)) {
      const state = w.copies.get(name);
      if (!state) continue;
      for (const [key, t] of Object.entries(state.params))
        expected.set(`${PREFIX}${path}.${key}`, { state, backend: t.backend, key, shape: [...t.shape] });
    }
    // peft writes the DoRA magnitude without ".weight" but accepts it with one.
    const fileKey = (k: string) => (k.endsWith(".lora_magnitude_vector.weight") ? k.slice(0, -".weight".length) : k);
    const present = new Set(file.names.map(fileKey));
    const missing = [...expected.keys()].filter((k) => !present.has(k));
    const unexpected = file.names.filter((k) => !expected.has(fileKey(k)));
    const problems: string[] = [];
    const list = (xs: string[]) => (xs.length > 6 ? `${xs.slice(0, 6).join(", ")} and ${xs.length - 6} more` : xs.join(", "));
    if (missing.length) problems.push(`missing ${list(missing)}`);
    if (unexpected.length) problems.push(`unexpected ${list(unexpected)} (targets in ${CONFIG_FILE} do not cover them)`);
    for (const k of file.names) {
      const e = expected.get(fileKey(k));
      const info = file.info(k);
      if (e && (info.shape.length !== e.shape.length || info.shape.some((d, i) => d !== e.shape[i])))
        problems.push(`${k} has shape [${info.shape.join(",")}], the base model needs [${e.shape.join(",")}]`);
      if (e && !["F32", "BF16", "F16"].includes(info.dtype)) problems.push(`${k} has dtype ${info.dtype} (supported: F32, BF16, F16)`);
    }
    if (problems.length) throw new AdapterFormatError(`${directory.label}: the adapter does not fit the model: ${problems.join("; ")}`);
    for (const k of file.names) {
      const e = expected.get(fileKey(k))!;
      const t = await file.readTensor(k);
      const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      const dtype = t.dtype === "F32" ? "f32" : t.dtype === "BF16" ? "bf16" : "f16";
      const raw = T.tensorFromBytes(bytes, dtype, t.shape, { backend: e.backend });
      const v = dtype === "f32" ? raw : T.cast(raw, "f32");
      T.copyInto(into(e.state)[e.key], v);
      if (v !== raw) v.dispose();
      raw.dispose();
    }
  } finally {
    await file.close();
  }
}

/**
 * Reads an adapter directory's tensors as the INITIAL state of adapter `name`, already in `model` (the
 * teacher: base + this state), without injecting or re-running an initialisation. For an adapter that
 * `balora train` wrote: its `initial_adapter/` holds the state training started from.
 */
export async function loadInitialState(model: T.Module, dir: DirectoryInput, opts: { adapterName?: string } = {}): Promise<void> {
  const name = opts.adapterName ?? "default";
  requireAdapters(model, [name]);
  const directory = openDirectory(dir);
  if (!(await directory.isDirectory())) throw new AdapterFormatError(`${directory.label}: not an adapter directory`);
  await readAdapterConfig(directory); // a peft adapter directory; shapes are checked against the adapter in the model
  const config = adapterConfigs(model).get(name)!;
  const weights = await directory.open(WEIGHTS_FILE);
  if (!weights) throw await missingWeights(directory);
  const paths = loraLayers(model)
    .filter(([, l]) => l.adapters.has(name))
    .map(([p]) => p);
  const layers: (AdapterState | SavedModuleCopy)[] = paths.map((p) => (model.getSubmodule(p) as LoraLinear).adapters.get(name)!);
  for (const [, w] of savedModules(model)) {
    const c = w.copies.get(name);
    if (c) layers.push(c);
  }
  // Fresh storage for the initial state (a snapshot of the params), then overwritten from the file.
  const before = layers.map((st) => st.initial);
  for (const st of layers) {
    st.initial = null;
    snapshotInitial(st);
  }
  try {
    await copyWeights(model, name, config, paths, directory, weights, (st) => st.initial!);
  } catch (e) {
    layers.forEach((st, i) => {
      for (const t of Object.values(st.initial ?? {})) t.dispose();
      st.initial = before[i];
    });
    throw e;
  }
  for (const prev of before) for (const t of Object.values(prev ?? {})) t.dispose();
}

/**
 * Copies an adapter directory's tensors into adapter `name`, already in `model`, without injecting or
 * re-running an initialisation (PiSSA's residual stays as it is): how a resumed run restores its weights.
 */
export async function loadAdapterWeights(model: T.Module, dir: DirectoryInput, opts: { adapterName?: string } = {}): Promise<void> {
  const name = opts.adapterName ?? "default";
  requireAdapters(model, [name]);
  const directory = openDirectory(dir);
  if (!(await directory.isDirectory())) throw new AdapterFormatError(`${directory.label}: not an adapter directory`);
  await readAdapterConfig(directory);
  const weights = await directory.open(WEIGHTS_FILE);
  if (!weights) throw await missingWeights(directory);
  const paths = loraLayers(model)
    .filter(([, l]) => l.adapters.has(name))
    .map(([p]) => p);
  await copyWeights(model, name, adapterConfigs(model).get(name)!, paths, directory, weights, (st) => st.params);
}

/** The error for a directory without adapter_model.safetensors (pointing at peft for a pickled one). */
async function missingWeights(directory: Directory): Promise<AdapterFormatError> {
  const legacy = await directory.open("adapter_model.bin");
  await legacy?.close();
  return new AdapterFormatError(
    legacy
      ? `${directory.label}: adapter_model.bin (pickle) is not supported; convert it to adapter_model.safetensors with peft`
      : `${directory.labelOf(WEIGHTS_FILE)}: not found`,
  );
}
