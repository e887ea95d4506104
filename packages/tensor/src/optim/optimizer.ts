// The optimizer base: named parameters, a learning rate that schedules can set each step, a step
// counter, zeroGrad, and the state dict (per-parameter tensors + JSON metadata) saved with checkpoints.
import { ArgumentError, DTypeError, fmtShape, ShapeError } from "../errors.js";
import { keep } from "../graph.js";
import { copyInto, fill } from "../ops/copy.js";
import type { Tensor } from "../tensor.js";

/** Parameters as a list (named by `tensor.name`, else `param.<i>`) or as [name, tensor] pairs (module paths). */
export type ParamsInput = readonly Tensor[] | Iterable<readonly [string, Tensor]>;

/**
 * An optimizer's complete state: tensors keyed `<parameter name>.<slot>` (as a safetensors file holds
 * them) and string metadata with the kind, step count and hyper-parameters.
 */
export interface OptimizerStateDict {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

/** The metadata key that holds the optimizer's JSON (kind, step, hyper-parameters, parameter names). */
export const OPTIMIZER_METADATA_KEY = "balora.optimizer";

interface StateJson {
  kind: string;
  step: number;
  hyper: Record<string, number | number[]>;
  params: string[];
}

export abstract class Optimizer {
  lr: number;
  stepCount = 0;
  readonly params: Tensor[];
  /** One name per parameter, in order: the keys of the state dict. */
  readonly paramNames: string[];
  /** Per parameter, its state tensors by slot ("exp_avg", "momentum_buffer", ...), created at its first step. */
  protected readonly state = new Map<Tensor, Record<string, Tensor>>();

  constructor(
    params: ParamsInput,
    lr: number,
    /** "AdamW", "SGD": checked when a state dict is loaded. */
    readonly kind: string,
  ) {
    if (!(lr >= 0)) throw new ArgumentError(`optimizer: learning rate must be >= 0, got ${lr}`);
    const list = [...(params as Iterable<Tensor | readonly [string, Tensor]>)];
    const entries: [string, Tensor][] = list.map((e, i) =>
      Array.isArray(e) ? [e[0], e[1]] : [(e as Tensor).name ?? `param.${i}`, e as Tensor],
    );
    const bad = entries.find(([, p]) => !p.requiresGrad);
    if (bad) throw new ArgumentError(`optimizer: parameter ${bad[0]} does not require grad`);
    const names = entries.map(([n]) => n);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined)
      throw new ArgumentError(`optimizer: two parameters are named "${dup}"; pass [name, tensor] pairs with unique names`);
    this.params = entries.map(([, t]) => t);
    this.paramNames = names;
    this.lr = lr;
  }

  abstract step(): void;

  /** Hyper-parameters saved with the state (the learning rate included). */
  protected abstract hyper(): Record<string, number | number[]>;

  /** Frees every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The state tensors of `p`, created zero-filled by `create` on first use. */
  protected slots(p: Tensor, create: () => Record<string, Tensor>): Record<string, Tensor> {
    let s = this.state.get(p);
    if (!s) {
      s = create();
      for (const t of Object.values(s)) keep(t);
      this.state.set(p, s);
    }
    return s;
  }

  /**
   * The state as tensors keyed `<parameter>.<slot>` (views of the live state: read them before the next
   * step, dispose them when written) and metadata for a safetensors file.
   */
  stateDict(): OptimizerStateDict {
    const tensors: Record<string, Tensor> = {};
    this.params.forEach((p, i) => {
      const s = this.state.get(p);
      if (s) for (const [slot, t] of Object.entries(s)) tensors[`${this.paramNames[i]}.${slot}`] = t.viewAs(t.shape, t.strides, t.offset);
    });
    const json: StateJson = { kind: this.kind, step: this.stepCount, hyper: this.hyper(), params: this.paramNames };
    return { tensors, metadata: { [OPTIMIZER_METADATA_KEY]: JSON.stringify(json) } };
  }

  /**
   * Restores a state dict saved by the same kind of optimizer over parameters with the same names and
   * shapes: step count, hyper-parameters and every state tensor (copied; the caller keeps its tensors).
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const raw = sd.metadata[OPTIMIZER_METADATA_KEY];
    if (raw === undefined)
      throw new ArgumentError(`loadStateDict: metadata has no "${OPTIMIZER_METADATA_KEY}" entry (not an optimizer state)`);
    const json = JSON.parse(raw) as StateJson;
    if (json.kind !== this.kind) throw new ArgumentError(`loadStateDict: the state is from ${json.kind}, this optimizer is ${this.kind}`);
    const missing = json.params.filter((n) => !this.paramNames.includes(n));
    const extra = this.paramNames.filter((n) => !json.params.includes(n));
    if (missing.length || extra.length) {
      const few = (names: string[]) => names.slice(0, 3).join(", ") + (names.length > 3 ? ` and ${names.length - 3} more` : "");
      const diffs = [missing.length ? `saved only: ${few(missing)}` : "", extra.length ? `here only: ${few(extra)}` : ""];
      throw new ArgumentError(`loadStateDict: parameter names differ (${diffs.filter(Boolean).join("; ")})`);
    }
    const fresh = new Map<Tensor, Record<string, Tensor>>();
    for (const [key, src] of Object.entries(sd.tensors)) {
      const dot = key.lastIndexOf(".");
      const i = this.paramNames.indexOf(key.slice(0, dot));
      if (dot < 0 || i < 0) throw new ArgumentError(`loadStateDict: tensor "${key}" belongs to no parameter`);
      const p = this.params[i];
      if (src.dtype !== "f32") throw new DTypeError(`loadStateDict: "${key}" is ${src.dtype}, expected f32`);
      if (src.shape.length !== p.shape.length || src.shape.some((d, k) => d !== p.shape[k]))
        throw new ShapeError(`loadStateDict: "${key}" has shape ${fmtShape(src.shape)}, its parameter has ${fmtShape(p.shape)}`);
      if (src.backend !== p.backend)
        throw new ArgumentError(`loadStateDict: "${key}" lives on ${src.backend.description}; create it on the parameters' backend`);
      const copy = keep(fill(p.backend, p.shape, 0));
      copyInto(copy, src);
      const slots = fresh.get(p) ?? {};
      slots[key.slice(dot + 1)] = copy;
      fresh.set(p, slots);
    }
    this.disposeState();
    for (const [p, s] of fresh) this.state.set(p, s);
    this.stepCount = json.step;
    this.setHyper(json.hyper);
  }

  /** Applies saved hyper-parameters (lr and the optimizer's own). */
  protected abstract setHyper(h: Record<string, number | number[]>): void;

  private disposeState(): void {
    for (const s of this.state.values()) for (const t of Object.values(s)) t.dispose();
    this.state.clear();
  }

  /** Frees the optimizer's state tensors (not the parameters). */
  dispose(): void {
    this.disposeState();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
