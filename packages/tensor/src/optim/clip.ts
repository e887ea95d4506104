// Global gradient-norm clipping as torch.nn.utils.clip_grad_norm_: the norm and the scale stay on
// the device (no readback), gradients are scaled in place.
import { noGrad } from "../graph.js";
import { add, minimum, mul, div, sqrt, square } from "../ops/elementwise.js";
import { copyInto } from "../ops/copy.js";
import { sum } from "../ops/reduce.js";
import type { Tensor } from "../tensor.js";

/**
 * Scales all gradients by min(1, maxNorm / (‖g‖ + 1e-6)) where ‖g‖ is the L2 norm over all of them.
 * Returns the total norm (a scalar tensor; read it only when you need it).
 */
export function clipGradNorm(params: Tensor[], maxNorm: number): Tensor | null {
  const grads = params.map((p) => p.grad).filter((g): g is Tensor => !!g);
  if (grads.length === 0) return null;
  return noGrad(() => {
    let total: Tensor | null = null;
    for (const g of grads) {
      const sq = square(g);
      const s = sum(sq);
      sq.dispose();
      const next: Tensor = total ? add(total, s) : s;
      if (total) {
        total.dispose();
        s.dispose();
      }
      total = next;
    }
    const norm = sqrt(total!);
    total!.dispose();
    const denom = add(norm, 1e-6);
    const ratio = div(maxNorm, denom);
    const scale = minimum(ratio, 1);
    for (const g of grads) {
      const scaled = mul(g, scale);
      copyInto(g, scaled);
      scaled.dispose();
    }
    for (const t of [denom, ratio, scale]) t.dispose();
    return norm;
  });
}
