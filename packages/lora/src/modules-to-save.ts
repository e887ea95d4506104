// peft's modules_to_save for Linear layers (the sequence-classification `score` head): a frozen
// `original_module` plus one fully trainable copy per adapter, with the same teacher/disable views as LoRA.
import * as T from "@balora/tensor";
import { snapshotInitial } from "./pissa.js";

/** One adapter's trainable copy of the wrapped layer, and its initial state (the teacher's copy). */
export interface SavedModuleCopy {
  /** Tensors by saved key suffix ("weight", "bias"), f32, trainable. */
  params: Record<string, T.Tensor>;
  /** The copy's state when training started (null: the original module's weights). */
  initial: Record<string, T.Tensor> | null;
}

/** peft's ModulesToSaveWrapper around a Linear: `original_module` stays frozen, `modules_to_save.<adapter>` trains. */
export class ModulesToSaveLinear extends T.Module {
  original_module: T.Linear;
  readonly copies = new Map<string, SavedModuleCopy>();
  /** The adapter whose copy runs (peft: one at a time); null runs the original module. */
  active: string | null = null;
  /** When true, the original module runs (peft's disable_adapter). */
  disabled = false;
  /** When true, the active copy runs with its initial tensors (the frozen pre-trained view). */
  useInitial = false;

  constructor(
    original: T.Linear,
    /** The module path in the model ("score"). */
    readonly path: string,
  ) {
    super();
    this.original_module = original;
  }

  get inFeatures(): number {
    return this.original_module.inFeatures;
  }
  get outFeatures(): number {
    return this.original_module.outFeatures;
  }

  /** Adds adapter `name`'s copy: the original's tensors in f32, trainable. */
  addCopy(name: string): SavedModuleCopy {
    const o = this.original_module;
    const copy = (t: T.Tensor) => {
      const c = T.keep(T.noGrad(() => T.copyToContiguous(t.dtype === "f32" ? t : T.cast(t, "f32"))));
      c.requiresGrad = true;
      return c;
    };
    const params: Record<string, T.Tensor> = { weight: copy(o.weight) };
    if (o.bias) params.bias = copy(o.bias);
    const st: SavedModuleCopy = { params, initial: null };
    this.copies.set(name, st);
    return st;
  }

  /** The tensors the forward uses now (null: the original module). */
  private current(): Record<string, T.Tensor> | null {
    if (this.disabled || this.active === null) return null;
    const st = this.copies.get(this.active);
    if (!st) return null;
    return this.useInitial ? st.initial : st.params;
  }

  forward(x: T.Tensor): T.Tensor {
    const p = this.current();
    if (!p) return this.original_module.forward(x);
    const lead = x.shape.slice(0, -1);
    const x2 = T.reshape(x, [-1, this.inFeatures]);
    const y = T.matmul(x2, p.weight, { transB: true });
    const yb = p.bias ? T.add(y, p.bias) : y;
    const out = T.reshape(yb, [...lead, this.outFeatures]);
    for (const t of new Set([x2, y, yb])) if (t !== out) t.dispose();
    return out;
  }

  /** Copies appear under peft's in-memory names (`modules_to_save.default.weight`). */
  override *namedParameters(prefix = "", seen = new Set<T.Tensor>()): Generator<[string, T.Tensor]> {
    yield* super.namedParameters(prefix, seen);
    for (const [name, st] of this.copies)
      for (const [key, t] of Object.entries(st.params)) {
        if (seen.has(t)) continue;
        seen.add(t);
        const n = `modules_to_save.${name}.${key}`;
        yield [prefix ? `${prefix}.${n}` : n, t];
      }
  }

  /** Makes the copy's current tensors its initial state. */
  snapshotInitial(name: string): void {
    const st = this.copies.get(name);
    if (st) snapshotInitial(st);
  }

  /** A plain Linear with adapter `name`'s tensors (or the original when it has no copy), for merge-and-unload. */
  linearOf(name: string | null): T.Linear {
    const st = name === null ? undefined : this.copies.get(name);
    if (!st) return this.original_module;
    const w = T.keep(T.noGrad(() => T.copyToContiguous(st.params.weight)));
    const b = st.params.bias ? T.keep(T.noGrad(() => T.copyToContiguous(st.params.bias))) : null;
    return new T.Linear(w, b);
  }

  deleteCopy(name: string): void {
    const st = this.copies.get(name);
    if (!st) return;
    for (const t of [...Object.values(st.params), ...Object.values(st.initial ?? {})]) t.dispose();
    this.copies.delete(name);
    if (this.active === name) this.active = null;
  }

  override dispose(): void {
    for (const name of [...this.copies.keys()]) this.deleteCopy(name);
    this.original_module.dispose();
  }
}

/** peft's rule for a modules_to_save entry: the path is the name, or ends in `.<name>`. */
export const isModuleToSave = (names: readonly string[], path: string): boolean => names.some((n) => path === n || path.endsWith(`.${n}`));
