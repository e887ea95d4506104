// Plain LoRA: y = base(x) + s·B(A(x)), A [r, in], B [out, r]; merge W' = W + s·B·A. The A/B
// initialisers (peft's init_lora_weights) live here and are shared with DoRA.
import * as T from "@balora/tensor";
import { loraLinear } from "../fused.js";
import type { AdapterVariant, CreateContext } from "../variant.js";

const A = "lora_A.weight";
const B = "lora_B.weight";

function param(values: Float32Array, shape: number[], backend: T.Backend): T.Tensor {
  const t = T.keep(T.tensor(values, shape, { backend }));
  t.requiresGrad = true;
  return t;
}

/** A and B as peft initialises them (PiSSA starts from zeros here; see pissa.ts). */
export function initLoraAB(ctx: CreateContext): { A: T.Tensor; B: T.Tensor } {
  const [out, inF] = ctx.weight.shape;
  const { r, rng, init } = ctx;
  const a = new Float32Array(r * inF);
  const b = new Float32Array(out * r);
  // kaiming_uniform(a=√5) on a [r, in] weight ⇒ U(−1/√in, 1/√in)
  const kaiming = (arr: Float32Array, fanIn: number) => {
    const bound = 1 / Math.sqrt(fanIn);
    for (let i = 0; i < arr.length; i++) arr[i] = (2 * rng.next() - 1) * bound;
  };
  if (init === "gaussian") for (let i = 0; i < a.length; i++) a[i] = rng.normal() / r;
  else if (init === true || init === false) kaiming(a, inF);
  if (init === false) kaiming(b, r);
  return { A: param(a, [r, inF], ctx.backend), B: param(b, [out, r], ctx.backend) };
}

/** s·B·A, [out, in]. */
export function deltaWeight(scaling: number, params: Record<string, T.Tensor>): T.Tensor {
  return T.tidy(() => T.mul(T.matmul(params[B], params[A]), scaling));
}

/** B(A(x)) without scaling, [N, out]. */
export const loraPath = (x: T.Tensor, params: Record<string, T.Tensor>): T.Tensor =>
  T.matmul(T.matmul(x, params[A], { transB: true }), params[B], { transB: true });

export const loraVariant: AdapterVariant = {
  name: "lora",
  create(ctx) {
    const { A: a, B: b } = initLoraAB(ctx);
    return { [A]: a, [B]: b };
  },
  forward({ x, state, params }) {
    return T.tidy(() => T.mul(loraPath(x, params), state.scaling));
  },
  // The whole layer fused: base and adapter products summed in one matmul, forward and backward.
  forwardLayer({ x, state, params }, base) {
    return loraLinear(base.x, x, base.weight, params[A], params[B], state.scaling);
  },
  // y + s·(x·Aᵀ)·Bᵀ: the scale rides on the rank-r product and the add in the matmul's store.
  forwardAdd({ x, state, params }, y) {
    const u = T.matmul(x, params[A], { transB: true });
    const out = T.addmm(y, u, params[B], { transB: true, alpha: state.scaling, donate: true });
    u.dispose();
    return out;
  },
  merge(w, state) {
    const d = deltaWeight(state.scaling, state.params);
    const m = T.add(w, d);
    d.dispose();
    return m;
  },
  unmerge(w, state) {
    const d = deltaWeight(state.scaling, state.params);
    const m = T.sub(w, d);
    d.dispose();
    return m;
  },
  shapes: (out, inF, r) => ({ [A]: [r, inF], [B]: [out, r] }),
};

export const LORA_A = A;
export const LORA_B = B;
