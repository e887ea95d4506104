// PiSSA initialisation exactly as peft's pissa_init: the principal rank-r part of W becomes the
// adapter (B = U_r·√(S_r/s), A = √(S_r/s)·V_rᵀ) and the base becomes the residual W_res = W − s·B·A.
import * as T from "@balora/tensor";
import { ArgumentError } from "@balora/tensor";
import type { LoraLinear } from "./layer.js";
import { LORA_A, LORA_B } from "./variants/lora.js";
import type { AdapterState } from "./variant.js";

/** Parses "pissa" (exact SVD) or "pissa_niter_N" (randomized, N subspace iterations). */
export function pissaMethod(init: string): { exact: true } | { exact: false; niter: number } {
  if (init === "pissa") return { exact: true };
  const m = /^pissa_niter_(\d+)$/.exec(init);
  if (!m) throw new ArgumentError(`init_lora_weights "${init}" is not a PiSSA method (use "pissa" or "pissa_niter_<N>")`);
  return { exact: false, niter: Number(m[1]) };
}

/**
 * Replaces the adapter's A/B with the principal part of the layer's weight and the base weight by the
 * residual (cast back to its dtype). The initial A0/B0 are kept for the frozen-model (teacher) view.
 */
export function pissaInit(layer: LoraLinear, st: AdapterState, init: string, seed = 0): void {
  const method = pissaMethod(init);
  const w = layer.base_layer.weight;
  const r = st.r;
  const [out, inF] = w.shape;
  if (r > Math.min(out, inF)) throw new ArgumentError(`PiSSA: r = ${r} exceeds min(out, in) = ${Math.min(out, inF)} of ${layer.path}`);
  const { A, B } = T.noGrad(() =>
    T.tidy(() => {
      const w32 = T.cast(w, "f32");
      const { u, s, v } = method.exact ? T.svd(w32) : T.svdLowRank(w32, r, { niter: method.niter, seed });
      const ur = T.narrow(u, 1, 0, r); // [out, r]
      const vr = T.narrow(v, 1, 0, r); // [in, r]
      const root = T.sqrt(T.div(T.narrow(s, 0, 0, r), st.scaling)); // √(S_r / s)
      return { B: T.contiguous(T.mul(ur, root)), A: T.contiguous(T.transpose(T.mul(vr, root))) };
    }),
  );
  for (const t of [st.params[LORA_A], st.params[LORA_B]]) t.dispose();
  st.params[LORA_A] = T.keep(A);
  st.params[LORA_B] = T.keep(B);
  for (const t of [A, B]) t.requiresGrad = true;
  setResidual(layer, st, B, A);
  snapshotInitial(st);
}

/**
 * PiSSA's base: W_res = W − s·B·A (f32 math, one rounding for 16-bit bases) replaces the layer's weight;
 * a variant re-initialises from it. From the SVD (pissaInit) or from a saved initial state (loadAdapter).
 */
export function setResidual(layer: LoraLinear, st: AdapterState, B: T.Tensor, A: T.Tensor): void {
  const w = layer.base_layer.weight;
  const residual = T.noGrad(() =>
    T.tidy(() => {
      const res = T.sub(T.cast(w, "f32"), T.mul(T.matmul(B, A), st.scaling));
      return w.dtype === "f32" ? T.contiguous(res) : T.cast(res, w.dtype);
    }),
  );
  layer.setBaseWeight(residual);
  st.variant.reinit?.(st, residual);
}

/** Makes the adapter's current tensors its initial state (the teacher's copy: training updates params in place). */
export function snapshotInitial(st: Pick<AdapterState, "params" | "initial">): void {
  for (const t of Object.values(st.initial ?? {})) t.dispose();
  st.initial = Object.fromEntries(Object.entries(st.params).map(([k, t]) => [k, T.keep(T.noGrad(() => T.copyToContiguous(t)))]));
}
