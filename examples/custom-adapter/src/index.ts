// An adapter variant as its own package: gated LoRA, y = W·x + σ(g)·s·B·A·x with a learnable scalar
// gate g per layer. Importing this module registers it; select it with `variant: "gated-lora"`.
import { type AdapterVariant, deltaWeight, initLoraAB, LORA_A, LORA_B, loraPath, registerVariant } from "@balora/lora";
import * as T from "@balora/tensor";

const GATE = "lora_gate";

export const gatedLora: AdapterVariant = {
  name: "gated-lora",
  create(ctx) {
    const { A, B } = initLoraAB(ctx);
    // σ(0) = ½: the adapter starts half open (still a no-op while B = 0).
    const g = T.keep(T.zeros([1], { backend: ctx.backend }));
    g.requiresGrad = true;
    return { [LORA_A]: A, [LORA_B]: B, [GATE]: g };
  },
  forward({ x, state, params }) {
    return T.mul(T.mul(loraPath(x, params), T.sigmoid(params[GATE])), state.scaling);
  },
  merge(w, state) {
    return T.tidy(() => T.add(w, T.mul(deltaWeight(state.scaling, state.params), T.sigmoid(state.params[GATE]))));
  },
  unmerge(w, state) {
    return T.tidy(() => T.sub(w, T.mul(deltaWeight(state.scaling, state.params), T.sigmoid(state.params[GATE]))));
  },
  shapes: (out, inF, r) => ({ [LORA_A]: [r, inF], [LORA_B]: [out, r], [GATE]: [1] }),
};

registerVariant(gatedLora);
