// The adapter-variant plugin interface and its registry (built-ins in a static table, plugins added at
// run time): a variant creates its tensors, adds its output to the base's, merges, names its saved keys.
import { ArgumentError, type Backend, type Rng, type Tensor } from "@balora/tensor";
import type { InitLoraWeights } from "./config.js";
import { doraVariant } from "./variants/dora.js";
import { loraVariant } from "./variants/lora.js";

/** One adapter on one layer. */
export interface AdapterState {
  name: string;
  variant: AdapterVariant;
  r: number;
  alpha: number;
  /** alpha / r, or alpha / √r with rsLoRA. */
  scaling: number;
  dropout: number;
  /** Tensors by saved key suffix ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector", ...). */
  params: Record<string, Tensor>;
  /**
   * The adapter's initial tensors when they are not a no-op (PiSSA's A0, B0), so the frozen
   * pre-trained model is "base + initial adapter"; null when the initial adapter adds nothing.
   */
  initial: Record<string, Tensor> | null;
  /** Variant-private state (e.g. DoRA's weight norm cached at merge). */
  extra: Record<string, Tensor | number | undefined>;
}

export interface CreateContext {
  /** The frozen base weight [out, in] (f32, f16 or bf16). */
  weight: Tensor;
  r: number;
  scaling: number;
  init: InitLoraWeights;
  rng: Rng;
  backend: Backend;
}

export interface ForwardContext {
  /** Input after the adapter's dropout, [N, in]. */
  x: Tensor;
  /** Base layer output without bias for the same input, [N, out] (computed lazily on demand). */
  baseNoBias: () => Tensor;
  /** The frozen base weight [out, in]. */
  weight: Tensor;
  state: AdapterState;
  /** The tensors to use: `state.params`, or `state.initial` for the pre-trained-model view. */
  params: Record<string, Tensor>;
}

export interface AdapterVariant {
  readonly name: string;
  /** Creates the adapter's tensors (trainable ones get requiresGrad) for a base weight. */
  create(ctx: CreateContext): Record<string, Tensor>;
  /** Recomputes tensors that depend on the base weight after it changed (PiSSA); optional. */
  reinit?(state: AdapterState, weight: Tensor): void;
  /** What this adapter adds to the base layer's output, [N, out]. */
  forward(ctx: ForwardContext): Tensor;
  /**
   * Optional fused form: the base output `y` [N, out] plus this adapter's delta, where `y` may be
   * consumed (its storage reused, e.g. by `addmm(y, …, { donate: true })`). Preferred when present.
   */
  forwardAdd?(ctx: ForwardContext, y: Tensor): Tensor;
  /**
   * Optional fully fused form: the layer's whole output for the base input `base.x` [N, in] (ctx.x is
   * the adapter's input after dropout) without a separate base matmul. Used for a layer's only adapter
   * when the base has no bias. See `loraLinear`.
   */
  forwardLayer?(ctx: ForwardContext, base: { x: Tensor; weight: Tensor }): Tensor;
  /** The merged weight (f32) for base weight `w` (f32). */
  merge(w: Tensor, state: AdapterState): Tensor;
  /** The base weight (f32) back from a merged one. */
  unmerge(w: Tensor, state: AdapterState): Tensor;
  /** Shape of each saved tensor for a base weight [out, in] at rank r (checked on load). */
  shapes(out: number, inFeatures: number, r: number): Record<string, number[]>;
}

/** The variants every build has: a static table, so bundlers that drop import-time code keep them. */
const BUILT_IN: Readonly<Record<string, AdapterVariant>> = Object.freeze({ lora: loraVariant, dora: doraVariant });

/** Variants added at run time by plugins. */
const plugins = new Map<string, AdapterVariant>();

/**
 * Registers a plugin variant under its name (a package can export one and its users call this).
 * Registering a name again replaces that plugin; the built-in names ("lora", "dora") cannot be replaced.
 */
export function registerVariant(v: AdapterVariant): void {
  if (!/^[a-z][a-z0-9-]*$/.test(v.name))
    throw new ArgumentError(`registerVariant: name "${v.name}" must be lowercase letters, digits and dashes`);
  if (Object.hasOwn(BUILT_IN, v.name))
    throw new ArgumentError(`registerVariant: "${v.name}" is a built-in variant and cannot be replaced; register yours under another name`);
  plugins.set(v.name, v);
}

export function getVariant(name: string): AdapterVariant {
  const v = Object.hasOwn(BUILT_IN, name) ? BUILT_IN[name] : plugins.get(name);
  if (!v)
    throw new ArgumentError(
      `adapter variant "${name}" is not registered (registered: ${registeredVariants().join(", ")}); import the package that provides it`,
    );
  return v;
}

/** Built-in variants first, then plugins in registration order. */
export const registeredVariants = (): string[] => [...Object.keys(BUILT_IN), ...plugins.keys()];
