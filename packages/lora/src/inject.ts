// Adapter injection into any Module tree with named Linear layers, and the multi-adapter controls:
// add, set active, disable for a block, teacher view (initial adapters), delete, merge, unload, report.
import * as T from "@balora/tensor";
import { ArgumentError } from "@balora/tensor";
import { DEFAULT_TARGETS, type LoraConfig, loraConfig, resolveModuleParams, variantOf } from "./config.js";
import { LoraLinear } from "./layer.js";
import { isTarget } from "./match.js";
import { isModuleToSave, ModulesToSaveLinear } from "./modules-to-save.js";
import { pissaInit, snapshotInitial } from "./pissa.js";
import { type AdapterState, getVariant } from "./variant.js";
import { LORA_B } from "./variants/lora.js";

/** Configs of the adapters injected into each model, by adapter name. */
const configs = new WeakMap<T.Module, Map<string, LoraConfig>>();

export function adapterConfigs(model: T.Module): Map<string, LoraConfig> {
  let m = configs.get(model);
  if (!m) configs.set(model, (m = new Map()));
  return m;
}

/** Every modules_to_save wrapper of the model with its path. */
export function savedModules(model: T.Module): [string, ModulesToSaveLinear][] {
  return [...model.namedModules()].filter((e): e is [string, ModulesToSaveLinear] => e[1] instanceof ModulesToSaveLinear);
}

/** A path inside a wrapper (its base_layer or original_module): never a target of its own. */
const isWrapped = (path: string) => path.endsWith(".base_layer") || path.endsWith(".original_module");

/** peft: names in modules_to_save are never LoRA targets, nor anything inside them. */
const underModuleToSave = (names: readonly string[] | null, path: string) =>
  !!names && names.some((m) => path === m || path.startsWith(`${m}.`) || path.endsWith(`.${m}`) || path.includes(`.${m}.`));

/** Every LoraLinear of the model with its path. */
export function loraLayers(model: T.Module): [string, LoraLinear][] {
  return [...model.namedModules()].filter((e): e is [string, LoraLinear] => e[1] instanceof LoraLinear);
}

const OUTPUT_LAYERS = ["lm_head"];
const SEQ_CLS_HEADS = ["score", "classifier"];

/** Resolves "all-linear" (every Linear but the output head, as peft) and null (peft's LLaMA/Mistral/Gemma default). */
function explicitTargets(model: T.Module, c: LoraConfig): string[] | string {
  if (c.target_modules === null) return DEFAULT_TARGETS;
  if (typeof c.target_modules !== "string" || c.target_modules.toLowerCase() !== "all-linear") return c.target_modules;
  const heads = c.task_type === "SEQ_CLS" ? SEQ_CLS_HEADS : OUTPUT_LAYERS;
  return [...model.namedModules()]
    .filter(([p, m]) => (m instanceof LoraLinear || (m instanceof T.Linear && !isWrapped(p))) && !heads.includes(p.split(".").pop()!))
    .map(([p]) => p);
}

export interface InjectOptions {
  adapterName?: string;
  /** Seed for random initialisations and dropout masks (default 0). */
  seed?: number;
  /** Make this adapter the active one (default: true for the first adapter, as peft's get_peft_model). */
  activate?: boolean;
  /** Called after each layer got its adapter (PiSSA's SVD included), for progress lines. */
  onLayer?: (path: string, index: number, total: number) => void;
}

export interface InjectResult {
  adapterName: string;
  /** Paths of the adapted layers. */
  targets: string[];
}

/**
 * Adds adapter `adapterName` to every matching Linear of `model` (wrapping it in a LoraLinear the
 * first time). Freezes all base weights; only adapter tensors require grad.
 */
export function injectAdapter(model: T.Module, config: Partial<LoraConfig> = {}, opts: InjectOptions = {}): InjectResult {
  const c = loraConfig(config as Partial<LoraConfig> & Record<string, unknown>);
  const name = opts.adapterName ?? "default";
  if (!/^[\w-]+$/.test(name)) throw new ArgumentError(`injectAdapter: adapter name "${name}" must be letters, digits, _ or -`);
  const known = adapterConfigs(model);
  if (known.has(name)) throw new ArgumentError(`injectAdapter: adapter "${name}" already exists; delete it first or choose another name`);
  const variant = getVariant(variantOf(c));
  const targets = explicitTargets(model, c);
  const matched: [string, T.Module][] = [];
  for (const [path, m] of model.namedModules()) {
    if (path === "" || isWrapped(path) || m instanceof ModulesToSaveLinear || underModuleToSave(c.modules_to_save, path)) continue;
    if (!isTarget(c, targets, path)) continue;
    if (!(m instanceof T.Linear) && !(m instanceof LoraLinear))
      throw new ArgumentError(
        `injectAdapter: target "${path}" is a ${m.constructor.name}, not a Linear layer; only Linear layers can take a LoRA adapter`,
      );
    matched.push([path, m]);
  }
  if (matched.length === 0) {
    const linears = [...model.namedModules()].filter(([p, m]) => m instanceof T.Linear && !isWrapped(p)).map(([p]) => p);
    const suffixes = [...new Set(linears.map((p) => p.split(".").pop()))].join(", ");
    throw new ArgumentError(
      `injectAdapter: target_modules ${JSON.stringify(c.target_modules)} match no Linear layer of the model (its Linear layers ` +
        `end in: ${suffixes || "none"})`,
    );
  }
  const saved = modulesToSave(model, c.modules_to_save ?? [], "injectAdapter");
  model.requiresGrad_(false);
  for (const [, l] of loraLayers(model))
    for (const st of l.adapters.values()) for (const t of Object.values(st.params)) t.requiresGrad = true;
  for (const [, w] of savedModules(model))
    for (const st of w.copies.values()) for (const t of Object.values(st.params)) t.requiresGrad = true;
  const rng = new T.Rng(opts.seed ?? 0);
  const backend =
    matched[0][1] instanceof LoraLinear
      ? (matched[0][1] as LoraLinear).base_layer.weight.backend
      : (matched[0][1] as T.Linear).weight.backend;
  for (const [i, [path, m]] of matched.entries()) {
    let layer: LoraLinear;
    if (m instanceof LoraLinear) layer = m;
    else {
      layer = new LoraLinear(m as T.Linear, path, opts.seed ?? 0);
      model.setSubmodule(path, layer);
    }
    const { r, alpha, scaling } = resolveModuleParams(c, path);
    const init = c.init_lora_weights;
    const pissa = typeof init === "string" && init.startsWith("pissa");
    const params = variant.create({ weight: layer.base_layer.weight, r, scaling, init: pissa ? "gaussian" : init, rng, backend });
    const st: AdapterState = { name, variant, r, alpha, scaling, dropout: c.lora_dropout, params, initial: null, extra: {} };
    layer.adapters.set(name, st);
    if (pissa) pissaInit(layer, st, init as "pissa", opts.seed ?? 0);
    layer.training = model.training;
    opts.onLayer?.(path, i + 1, matched.length);
  }
  wrapModules(model, saved, name);
  known.set(name, c);
  const activate = opts.activate ?? known.size === 1;
  if (activate) setAdapter(model, name);
  return { adapterName: name, targets: matched.map(([p]) => p) };
}

/** The layers a modules_to_save list names (peft's rule), checked to be Linear layers. */
function modulesToSave(model: T.Module, names: readonly string[], caller: string): [string, T.Module][] {
  const saved: [string, T.Module][] = [];
  if (names.length === 0) return saved;
  for (const [path, m] of model.namedModules()) {
    if (path === "" || isWrapped(path) || !isModuleToSave(names, path)) continue;
    if (!(m instanceof T.Linear) && !(m instanceof ModulesToSaveLinear))
      throw new ArgumentError(`${caller}: modules_to_save "${path}" is a ${m.constructor.name}; only Linear layers are supported`);
    saved.push([path, m]);
  }
  return saved;
}

/** Wraps each layer once (peft's ModulesToSaveWrapper) and gives it adapter `name`'s trainable copy. */
function wrapModules(model: T.Module, saved: [string, T.Module][], name: string): void {
  for (const [path, m] of saved) {
    let w: ModulesToSaveLinear;
    if (m instanceof ModulesToSaveLinear) w = m;
    else {
      w = new ModulesToSaveLinear(m as T.Linear, path);
      model.setSubmodule(path, w);
    }
    if (!w.copies.has(name)) w.addCopy(name);
    if (activeAdapters(model).includes(name)) w.active = name;
    w.training = model.training;
  }
}

/**
 * Adds modules_to_save to adapter `name`, already in `model` (e.g. a classifier's `score` head for an
 * adapter saved without it): the named Linear layers train in full and are saved with the adapter.
 * Returns the paths wrapped; names that match no layer are ignored, as peft does.
 */
export function addModulesToSave(model: T.Module, names: string[], name = "default"): string[] {
  requireAdapters(model, [name]);
  const c = adapterConfigs(model).get(name)!;
  const saved = modulesToSave(model, names, "addModulesToSave").filter(
    ([, m]) => !(m instanceof ModulesToSaveLinear && m.copies.has(name)),
  );
  wrapModules(model, saved, name);
  c.modules_to_save = [...new Set([...(c.modules_to_save ?? []), ...names])];
  return saved.map(([p]) => p);
}

export function requireAdapters(model: T.Module, names: string[]): void {
  const known = adapterConfigs(model);
  for (const n of names)
    if (!known.has(n)) throw new ArgumentError(`adapter "${n}" does not exist (adapters: ${[...known.keys()].join(", ") || "none"})`);
}

/** Makes `names` the active adapters (their outputs add up). */
export function setAdapter(model: T.Module, names: string | string[]): void {
  const list = typeof names === "string" ? [names] : names;
  requireAdapters(model, list);
  for (const [, l] of loraLayers(model)) l.active = list.filter((n) => l.adapters.has(n));
  for (const [, w] of savedModules(model)) w.active = list.find((n) => w.copies.has(n)) ?? null;
}

/** The active adapter names. */
export const activeAdapters = (model: T.Module): string[] => [...new Set(loraLayers(model).flatMap(([, l]) => l.active))];

/** Sets a flag on every LoraLinear for the duration of `fn`: synchronously for a synchronous `fn`. */
function withFlag<R>(model: T.Module, set: (l: LoraLinear | ModulesToSaveLinear, on: boolean) => void, fn: () => R): R {
  const layers = [...loraLayers(model), ...savedModules(model)].map(([, l]) => l);
  const reset = () => {
    for (const l of layers) set(l, false);
  };
  for (const l of layers) set(l, true);
  let result: R;
  try {
    result = fn();
  } catch (e) {
    reset();
    throw e;
  }
  if (result instanceof Promise) return result.finally(reset) as R;
  reset();
  return result;
}

/**
 * Runs `fn` with every adapter off (merged ones are unmerged first), like peft's disable_adapter().
 * Returns what `fn` returns: a value for a synchronous `fn`, a Promise for an async one.
 */
export function disableAdapters<R>(model: T.Module, fn: () => R): R {
  for (const [, l] of loraLayers(model)) l.unmerge();
  return withFlag(model, (l, on) => (l.disabled = on), fn);
}

/**
 * Runs `fn` on the frozen pre-trained model: each adapter at its initial state (PiSSA: W_res + s·B0·A0
 * = W; zero-initialised adapters add nothing). This is BA-LoRA's teacher, without a second model.
 * Synchronous when `fn` is (so a training step stays one synchronous tidy); a Promise when `fn` is async.
 */
export function withInitialAdapters<R>(model: T.Module, fn: () => R): R {
  if (loraLayers(model).some(([, l]) => l.merged.length)) throw new ArgumentError("withInitialAdapters: unmerge the adapters first");
  return withFlag(model, (l, on) => (l.useInitial = on), fn);
}

/**
 * Makes adapter `name`'s current tensors its initial state everywhere: the teacher view
 * (`withInitialAdapters`) then runs base + these tensors. For a run that starts from a saved adapter
 * (e.g. `balora init`'s pissa_init beside the residual model); PiSSA initialisation does it itself.
 */
export function markInitialState(model: T.Module, name = "default"): void {
  requireAdapters(model, [name]);
  for (const [, l] of loraLayers(model)) {
    const st = l.adapters.get(name);
    if (st) snapshotInitial(st);
  }
  for (const [, w] of savedModules(model)) w.snapshotInitial(name);
}

/**
 * Forgets adapter `name`'s initial state when it adds nothing (every initial lora_B is zero, as a plain
 * LoRA init leaves it): the teacher view then runs the base alone, without the adapter's products.
 * Returns whether it did (false when any initial B is non-zero, e.g. PiSSA, or there is no initial state).
 */
export async function forgetZeroInitialState(model: T.Module, name = "default"): Promise<boolean> {
  const states = loraLayers(model)
    .map(([, l]) => l.adapters.get(name))
    .filter((st): st is AdapterState => !!st?.initial);
  if (states.length === 0) return false;
  if (states.some((st) => !st.initial![LORA_B])) return false;
  const bs = await Promise.all(states.map((st) => st.initial![LORA_B].data())); // readbacks in flight together
  if (bs.some((b) => b.some((v) => v !== 0))) return false;
  for (const st of states) {
    for (const t of Object.values(st.initial!)) t.dispose();
    st.initial = null;
  }
  return true;
}

/** Removes an adapter everywhere and frees its tensors; layers left without adapters become plain Linears. */
export function deleteAdapter(model: T.Module, name: string): void {
  requireAdapters(model, [name]);
  for (const [path, l] of loraLayers(model)) {
    l.deleteAdapter(name);
    if (l.adapters.size === 0) model.setSubmodule(path, l.base_layer);
  }
  for (const [path, w] of savedModules(model)) {
    w.deleteCopy(name);
    if (w.copies.size === 0) model.setSubmodule(path, w.original_module);
  }
  adapterConfigs(model).delete(name);
}

/** Merges the active adapters into the base weights (forward then skips them). */
export function mergeAdapters(model: T.Module, names?: string[]): void {
  if (names) requireAdapters(model, names);
  for (const [, l] of loraLayers(model)) l.merge(names ? names.filter((n) => l.adapters.has(n)) : l.active);
}

/**
 * Sets the dropout draw of every adapter layer: LoRA dropout masks are a pure function of (seed,
 * draw, layer path, adapter), so the trainer passes e.g. the micro-batch index since the start of
 * training and a resumed run (or a recomputed forward) draws exactly the same masks.
 */
export function setDropoutDraw(model: T.Module, draw: number): void {
  if (!Number.isInteger(draw) || draw < 0 || draw > 0xffffffff)
    throw new ArgumentError(`setDropoutDraw: draw must be a 32-bit unsigned integer, got ${draw}`);
  for (const [, l] of loraLayers(model)) l.dropoutDraw = draw;
}

export function unmergeAdapters(model: T.Module): void {
  for (const [, l] of loraLayers(model)) l.unmerge();
}

/** Merges the active adapters and replaces every LoraLinear by its (merged) base Linear. */
export function mergeAndUnload(model: T.Module): void {
  for (const [path, l] of loraLayers(model)) {
    l.merge(l.active);
    l.merged = [];
    for (const name of [...l.adapters.keys()]) l.deleteAdapter(name);
    model.setSubmodule(path, l.base_layer);
  }
  unloadSavedModules(model);
  adapterConfigs(model).clear();
}

/** Removes every adapter without merging: each LoraLinear becomes its base Linear again (PiSSA: the residual). */
export function unloadAdapters(model: T.Module): void {
  for (const [path, l] of loraLayers(model)) {
    l.unmerge();
    for (const name of [...l.adapters.keys()]) l.deleteAdapter(name);
    model.setSubmodule(path, l.base_layer);
  }
  unloadSavedModules(model);
  adapterConfigs(model).clear();
}

/** Replaces each modules_to_save wrapper by its active copy as a plain Linear (peft's merge_and_unload and unload). */
function unloadSavedModules(model: T.Module): void {
  for (const [path, w] of savedModules(model)) {
    const linear = w.linearOf(w.active);
    if (linear !== w.original_module) w.original_module.dispose();
    for (const name of [...w.copies.keys()]) w.deleteCopy(name);
    model.setSubmodule(path, linear);
  }
}

export interface ParameterReport {
  trainable: number;
  total: number;
  /** peft's print_trainable_parameters line. */
  line: string;
}

/** Trainable vs all parameters, formatted like peft's `print_trainable_parameters`. */
export function trainableReport(model: T.Module): ParameterReport {
  let trainable = 0;
  let total = 0;
  for (const [, t] of model.namedParameters()) {
    total += t.size;
    if (t.requiresGrad) trainable += t.size;
  }
  const fmt = (n: number) => n.toLocaleString("en-US");
  return {
    trainable,
    total,
    line:
      `trainable params: ${fmt(trainable)} || all params: ${fmt(total)} || trainable%: ` +
      `${((100 * trainable) / Math.max(total, 1)).toFixed(4)}`,
  };
}
