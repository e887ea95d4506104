// DoRA as peft implements it: magnitude m [out] initialised to ‖W + s·B·A‖ per output row; forward
// adds (m/n − 1)·(x·Wᵀ) + (m/n)·s·B(A(x)) with n = ‖W + s·B·A‖ detached; merge W' = (m/n)·(W + ΔW).
import * as T from "@balora/tensor";
import type { AdapterVariant } from "../variant.js";
import { deltaWeight, initLoraAB, LORA_A, LORA_B, loraPath } from "./lora.js";

const M = "lora_magnitude_vector";

/** ‖W + s·B·A‖ over each output row, [out], with no gradient (peft detaches it). */
function weightNorm(w: T.Tensor, scaling: number, params: Record<string, T.Tensor>): T.Tensor {
  return T.noGrad(() => T.tidy(() => T.sqrt(T.sum(T.square(T.add(T.cast(w, "f32"), deltaWeight(scaling, params))), 1))));
}

function magnitude(w: T.Tensor, scaling: number, params: Record<string, T.Tensor>): T.Tensor {
  const m = T.keep(weightNorm(w, scaling, params));
  m.requiresGrad = true;
  return m;
}

export const doraVariant: AdapterVariant = {
  name: "dora",
  create(ctx) {
    const { A, B } = initLoraAB(ctx);
    const params = { [LORA_A]: A, [LORA_B]: B };
    return { ...params, [M]: magnitude(ctx.weight, ctx.scaling, params) };
  },
  reinit(state, w) {
    state.params[M].dispose();
    state.params[M] = magnitude(w, state.scaling, state.params);
  },
  forward({ x, baseNoBias, weight, state, params }) {
    return T.tidy(() => {
      const n = weightNorm(weight, state.scaling, params);
      const scale = T.div(params[M], n); // gradient reaches m only
      const base = baseNoBias();
      const lora = T.mul(loraPath(x, params), state.scaling);
      return T.add(T.mul(T.sub(scale, 1), base), T.mul(scale, lora));
    });
  },
  merge(w, state) {
    return T.tidy(() => {
      const n = weightNorm(w, state.scaling, state.params);
      (state.extra.norm as T.Tensor | undefined)?.dispose();
      state.extra.norm = T.keep(T.identity(n));
      const factor = T.unsqueeze(T.div(state.params[M], n), 1);
      return T.mul(factor, T.add(w, deltaWeight(state.scaling, state.params)));
    });
  },
  unmerge(w, state) {
    return T.tidy(() => {
      const n = state.extra.norm as T.Tensor;
      const factor = T.unsqueeze(T.div(state.params[M], n), 1);
      return T.sub(T.div(w, factor), deltaWeight(state.scaling, state.params));
    });
  },
  shapes: (out, inF, r) => ({ [LORA_A]: [r, inF], [LORA_B]: [out, r], [M]: [out] }),
};
