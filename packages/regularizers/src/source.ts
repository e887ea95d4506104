// Logits sources: materialised logits, or hidden states with the frozen LM head (weight [V, h], an
// optional final soft-cap) so the vocabulary-sized logits are never formed; and the supervision masks.
import * as T from "@balora/tensor";
import { ArgumentError, ShapeError, type Tensor } from "@balora/tensor";
import { mapElementwise } from "@balora/tensor/kernel";
import { gramEigh } from "./fused/eigh.js";
import type { FactoredLogits, LogitsSource, MaskMode } from "./types.js";

export interface LmHeadOptions {
  /** Gemma 2's final logit soft-cap c: logits = c·tanh(z/c). Null or 0: none. */
  softcap?: number | null;
}

/**
 * A frozen LM head shared by student and teacher: the weight [V, h] (f32, bf16 or f16, never trained
 * here) and, computed once on first use, its h×h Gram matrix WᵀW for the SVD term. `dispose()` frees
 * the cached Gram matrix only; the weight belongs to the model.
 */
export class LmHead {
  readonly weight: Tensor;
  readonly softcap: number | null;
  private cachedGram: Tensor | null = null;
  private cachedRoot: Tensor | null = null;
  constructor(weight: Tensor, opts: LmHeadOptions = {}) {
    weight.assertLive("LmHead");
    if (weight.rank !== 2) throw new ShapeError(`LmHead: the weight must be [V, h], got [${weight.shape.join(", ")}]`);
    if (weight.requiresGrad)
      throw new ArgumentError(
        "LmHead: the LM head weight is trainable; the fused head takes a frozen head (pass materialised logits to train it)",
      );
    const c = opts.softcap ?? null;
    if (c !== null && !(typeof c === "number" && Number.isFinite(c) && c >= 0))
      throw new ArgumentError(`LmHead: softcap must be a positive number or null, got ${c}`);
    this.weight = weight;
    this.softcap = c === 0 ? null : c;
  }
  get vocab(): number {
    return this.weight.shape[0];
  }
  get hiddenSize(): number {
    return this.weight.shape[1];
  }
  /** WᵀW [h, h] f32 (cached: the head is frozen). */
  gram(): Tensor {
    if (!this.cachedGram || this.cachedGram.disposed)
      this.cachedGram = T.keep(T.noGrad(() => T.matmul(this.weight, this.weight, { transA: true })));
    return this.cachedGram;
  }
  /**
   * A square root L [h, h] of WᵀW (L·Lᵀ = WᵀW: Q·diag(√d) from its eigendecomposition; cached), so that
   * Z·Zᵀ = (H·L)·(H·L)ᵀ and the SVD term's spectrum comes from the h×h matrix (H·L)ᵀ·(H·L) when h < N.
   */
  gramRoot(): Tensor {
    if (!this.cachedRoot || this.cachedRoot.disposed)
      this.cachedRoot = T.keep(
        T.tidy(() =>
          T.noGrad(() => {
            const { values, vectors } = gramEigh(this.gram());
            return T.mul(vectors, T.reshape(T.sqrt(T.maximum(values, 0)), [1, this.hiddenSize]));
          }),
        ),
      );
    return this.cachedRoot;
  }
  dispose(): void {
    this.cachedGram?.dispose();
    this.cachedRoot?.dispose();
    this.cachedGram = null;
    this.cachedRoot = null;
  }
}

/** A factored logits source: rows of `hidden` [..., h] through `head`. */
export function factoredLogits(hidden: Tensor, head: LmHead): FactoredLogits {
  hidden.assertLive("factoredLogits");
  if (hidden.shape[hidden.rank - 1] !== head.hiddenSize)
    throw new ShapeError(`factoredLogits: hidden states [${hidden.shape.join(", ")}] do not end in the head's h = ${head.hiddenSize}`);
  return { kind: "factored", hidden, head };
}

export const isFactored = (s: LogitsSource): s is FactoredLogits =>
  !!s && typeof s === "object" && (s as { kind?: unknown }).kind === "factored";

/** Leading shape of a source's rows ([B, T] or [B]) and its last dimension (V or C). */
export function sourceShape(s: LogitsSource): { rows: number[]; vocab: number } {
  if (isFactored(s)) return { rows: s.hidden.shape.slice(0, -1), vocab: s.head.vocab };
  return { rows: s.shape.slice(0, -1), vocab: s.shape[s.rank - 1] };
}

/** The logits as a tensor (formed when factored, with autograd to the hidden states): for plugins and the reference path. */
export function materialize(s: LogitsSource): Tensor {
  if (!isFactored(s)) return s;
  const z = T.matmul(s.hidden, s.head.weight, { transB: true });
  const c = s.head.softcap;
  if (c === null) return z;
  const scaled = T.div(z, c);
  const t = T.tanh(scaled);
  const out = T.mul(t, c);
  for (const x of [z, scaled, t]) x.dispose();
  return out;
}

/**
 * The supervision mask over logit rows from labels [B, T] (i32, −100 = not supervised), f32 1/0:
 * `shifted` — logit t counts iff labels[t+1] ≠ −100 (the causal-LM shift, T.causalTargets' mask);
 * `unshifted` — iff labels[t] ≠ −100 (the ICLR code); `none` — every position (the v5-era code).
 */
export function supervisionMask(labels: Tensor, mode: MaskMode): Tensor {
  if (labels.dtype !== "i32" || labels.rank !== 2)
    throw new ShapeError(`supervisionMask: labels must be i32 [B, T], got ${labels.dtype} [${labels.shape.join(", ")}]`);
  switch (mode) {
    case "shifted": {
      const { targets, mask } = T.causalTargets(labels);
      targets.dispose();
      return mask;
    }
    case "unshifted":
      return mapElementwise(
        "supervised_unshifted",
        [labels],
        ([l]) => `select(1.0, 0.0, ${l} == -100.0)`,
        (l) => +(l !== -100),
      );
    case "none":
      return T.ones(labels.shape, { backend: labels.backend });
    default:
      throw new ArgumentError(`maskMode: must be "shifted", "unshifted" or "none", got ${JSON.stringify(mode)}`);
  }
}

/** 1/0 f32 per target: counted (≠ −100). */
export function countedTargets(targets: Tensor): Tensor {
  return mapElementwise(
    "target_counted",
    [targets],
    ([t]) => `select(1.0, 0.0, ${t} == -100.0)`,
    (t) => +(t !== -100),
  );
}
