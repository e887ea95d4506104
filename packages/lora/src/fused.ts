// The fused LoRA linear: y = x·Wᵀ + (s·x·Aᵀ)·Bᵀ as two dispatches forward (the rank-r product, then
// base and adapter summed in one matmul) and dx = g·W + du·A in one backward; no [N, out] temporaries.
import * as T from "@balora/tensor";
import { emptyTensor, matmulDual, matmulRaw } from "@balora/tensor/kernel";

/**
 * The output [N, out] of a frozen (or trainable) W [out, in] with a LoRA adapter A [r, in], B [out, r]
 * at scale s, for x [N, in]; `xd` is the adapter's input after dropout (x itself without dropout).
 *
 *   forward:  us = s·xd·Aᵀ            [N, r]
 *             y  = x·Wᵀ + us·Bᵀ        one kernel (both products summed in the matmul's store)
 *   backward: du = s·g·B              [N, r]
 *             dA = duᵀ·xd,  dB = gᵀ·us,  dW = gᵀ·x (only when W trains)
 *             dx = g·W + du·A          one kernel (without dropout); with dropout dxd = du·A goes to xd
 */
export function loraLinear(x: T.Tensor, xd: T.Tensor, W: T.Tensor, A: T.Tensor, B: T.Tensor, s: number): T.Tensor {
  const [N] = x.shape;
  const out = W.shape[0];
  // The rank-r work counts as "lora" in profiles; the summed product is the base layer's matmul.
  const us = T.withProfileTag("lora", () => matmulRaw(xd, A, false, true, s));
  const y = emptyTensor(x.backend, [N, out]);
  matmulDual(y, [x, W], [us, B], { transB: true });
  const dropped = xd !== x;
  const inputs = dropped ? [x, xd, W, A, B] : [x, W, A, B];
  return T.record(
    y,
    "lora_linear",
    inputs,
    (g, needs, [xds, Ws, As, Bs, uss, xs]) => {
      const [nx, nxd, nW, nA, nB] = dropped ? needs : [needs[0], false, needs[1], needs[2], needs[3]];
      const [du, dA, dB] = T.withProfileTag("lora", () => {
        const d = matmulRaw(g, Bs, false, false, s);
        return [d, nA ? matmulRaw(d, xds, true, false) : null, nB ? matmulRaw(g, uss, true, false) : null];
      });
      const dW = nW ? matmulRaw(g, xs, true, false) : null;
      let dx: T.Tensor | null = null;
      let dxd: T.Tensor | null = null;
      if (nx && !dropped) {
        dx = emptyTensor(x.backend, [N, x.shape[1]]);
        matmulDual(dx, [g, Ws], [du, As]);
      } else {
        if (nx) dx = matmulRaw(g, Ws, false, false);
        if (nxd) dxd = T.withProfileTag("lora", () => matmulRaw(du, As, false, false));
      }
      du.dispose();
      return dropped ? [dx, dxd, dW, dA, dB] : [dx, dW, dA, dB];
    },
    // What the backward reads: xd for dA, W and A for dx, B for du, us for dB, x for dW (if W trains).
    [xd, W, A, B, us, ...(W.requiresGrad ? [x] : [])],
  );
}
