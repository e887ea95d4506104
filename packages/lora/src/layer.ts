// LoraLinear wraps a frozen Linear (peft's `base_layer`) and holds any number of named adapters;
// its forward adds the active, unmerged ones. Merge/unmerge rewrite the base weight in place.
import * as T from "@balora/tensor";
import type { AdapterState } from "./variant.js";

/** In-memory parameter name, like peft: "lora_A.weight" of adapter "default" → "lora_A.default.weight". */
export function memoryName(key: string, adapter: string): string {
  const dot = key.indexOf(".");
  return dot < 0 ? `${key}.${adapter}` : `${key.slice(0, dot)}.${adapter}${key.slice(dot)}`;
}

export class LoraLinear extends T.Module {
  base_layer: T.Linear;
  readonly adapters = new Map<string, AdapterState>();
  /** Adapters added to the output, in order. */
  active: string[] = [];
  /** Adapters currently merged into base_layer.weight (LIFO for unmerge). */
  merged: string[] = [];
  /** When true, only the base layer runs. */
  disabled = false;
  /** When true, adapters run with their initial tensors (the frozen pre-trained view). */
  useInitial = false;
  /** Which dropout masks a training forward draws (see setDropoutDraw); masks depend on (seed, draw, path, adapter). */
  dropoutDraw = 0;

  constructor(
    base: T.Linear,
    /** The module path in the model ("model.layers.0.self_attn.q_proj"). */
    readonly path: string,
    /** The run's seed for dropout masks. */
    readonly seed = 0,
  ) {
    super();
    this.base_layer = base;
  }

  get inFeatures(): number {
    return this.base_layer.inFeatures;
  }
  get outFeatures(): number {
    return this.base_layer.outFeatures;
  }

  forward(x: T.Tensor): T.Tensor {
    const running = this.disabled ? [] : this.active.filter((n) => !this.merged.includes(n));
    const only = running.length === 1 ? this.adapters.get(running[0])! : null;
    const params = only && (this.useInitial ? only.initial : only.params);
    if (only && params && only.variant.forwardLayer && !this.base_layer.bias) return this.fusedForward(x, running[0], only, params);
    const y = this.base_layer.forward(x);
    if (running.length === 0) return y;
    // Every intermediate is disposed here: the graph keeps what backward needs.
    return T.withProfileTag("lora", () => {
      const x2 = T.reshape(x, [-1, this.inFeatures]);
      let out = T.reshape(y, [-1, this.outFeatures]);
      y.dispose();
      for (const name of running) {
        const st = this.adapters.get(name)!;
        const params = this.useInitial ? st.initial : st.params;
        if (!params) continue;
        const drop = this.training && !this.useInitial && st.dropout > 0;
        const xd = drop ? T.dropout(x2, st.dropout, { seed: this.seed, step: this.dropoutDraw, stream: `${this.path}/${name}` }) : x2;
        let baseNoBias: T.Tensor | null = null;
        const ctx = {
          x: xd,
          weight: this.base_layer.weight,
          state: st,
          params,
          baseNoBias: () => (baseNoBias ??= T.matmul(xd, this.base_layer.weight, { transB: true })),
        };
        let next: T.Tensor;
        if (st.variant.forwardAdd) next = st.variant.forwardAdd(ctx, out);
        else {
          const delta = st.variant.forward(ctx);
          next = T.add(out, delta);
          delta.dispose();
        }
        (baseNoBias as T.Tensor | null)?.dispose();
        if (xd !== x2) xd.dispose();
        out.dispose();
        out = next;
      }
      x2.dispose();
      const shaped = T.reshape(out, [...x.shape.slice(0, -1), this.outFeatures]);
      out.dispose();
      return shaped;
    });
  }

  /** One adapter and no bias: the variant computes the whole layer (base + adapter in one matmul). */
  private fusedForward(x: T.Tensor, name: string, st: AdapterState, params: Record<string, T.Tensor>): T.Tensor {
    const x2 = T.reshape(x, [-1, this.inFeatures]);
    const drop = this.training && !this.useInitial && st.dropout > 0;
    const xd = drop ? T.dropout(x2, st.dropout, { seed: this.seed, step: this.dropoutDraw, stream: `${this.path}/${name}` }) : x2;
    const weight = this.base_layer.weight;
    const ctx = { x: xd, weight, state: st, params, baseNoBias: () => T.matmul(xd, weight, { transB: true }) };
    const y2 = st.variant.forwardLayer!(ctx, { x: x2, weight });
    if (xd !== x2) xd.dispose();
    x2.dispose();
    const y = T.reshape(y2, [...x.shape.slice(0, -1), this.outFeatures]);
    y2.dispose();
    return y;
  }

  /** Adapter tensors appear under peft's in-memory names (`lora_A.default.weight`). */
  override *namedParameters(prefix = "", seen = new Set<T.Tensor>()): Generator<[string, T.Tensor]> {
    yield* super.namedParameters(prefix, seen);
    for (const [name, st] of this.adapters) {
      for (const [key, t] of Object.entries(st.params)) {
        if (seen.has(t)) continue;
        seen.add(t);
        const n = memoryName(key, name);
        yield [prefix ? `${prefix}.${n}` : n, t];
      }
    }
  }

  /** Replaces the base weight (PiSSA residual, merge), disposing the old one. */
  setBaseWeight(w: T.Tensor): void {
    const old = this.base_layer.weight;
    this.base_layer.weight = T.keep(w);
    w.name = old.name;
    if (old !== w) old.dispose();
  }

  /** Merges adapters into the base weight (f32 math, one rounding for 16-bit bases). */
  merge(names: string[] = this.active): void {
    for (const name of names) {
      if (this.merged.includes(name)) continue;
      const st = this.adapters.get(name)!;
      this.rewriteWeight((w) => st.variant.merge(w, st));
      this.merged.push(name);
    }
  }

  /** Unmerges everything merged, last first. Inexact for 16-bit bases (rounding). */
  unmerge(): void {
    while (this.merged.length) {
      const st = this.adapters.get(this.merged.pop()!)!;
      this.rewriteWeight((w) => st.variant.unmerge(w, st));
    }
  }

  private rewriteWeight(f: (w32: T.Tensor) => T.Tensor): void {
    const w = this.base_layer.weight;
    const next = T.noGrad(() =>
      T.tidy(() => {
        const m = f(T.cast(w, "f32"));
        return w.dtype === "f32" ? T.contiguous(m) : T.cast(m, w.dtype);
      }),
    );
    next.requiresGrad = false;
    this.setBaseWeight(next);
  }

  /** Removes an adapter and frees its tensors. */
  deleteAdapter(name: string): void {
    const st = this.adapters.get(name);
    if (!st) return;
    if (this.merged.includes(name)) this.unmerge();
    for (const t of [...Object.values(st.params), ...Object.values(st.initial ?? {})]) t.dispose();
    for (const v of Object.values(st.extra)) if (v instanceof T.Tensor) v.dispose();
    this.adapters.delete(name);
    this.active = this.active.filter((n) => n !== name);
  }

  override dispose(): void {
    for (const name of [...this.adapters.keys()]) this.deleteAdapter(name);
    this.base_layer.dispose();
  }
}
