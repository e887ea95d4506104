// Gradient checkpointing: a block runs without keeping its intermediates, and its backward reruns
// it with the graph on (same inputs, same keyed dropout masks) to backpropagate through it.
import { backward } from "../backward.js";
import { enableGrad, noGrad, record } from "../graph.js";
import type { Tensor } from "../tensor.js";

/**
 * `fn(...inputs, ...constants)` whose activations are not stored: the backward pass recomputes `fn`
 * and backpropagates through the recomputation. `params` are the trainable tensors `fn` reads (a
 * layer's adapters): their gradients accumulate into `.grad` during that inner backward. `constants`
 * are tensors `fn` reads but does not differentiate (an attention mask): the graph keeps them for the
 * recomputation, so the caller may dispose its own handles at once; `fn` must read them from its
 * arguments, not from a closure. `fn` must be deterministic given its inputs (dropout keyed by step,
 * as LoRA's is, qualifies).
 */
export function checkpoint(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], params: Tensor[] = [], constants: Tensor[] = []): Tensor {
  const y = noGrad(() => fn(...inputs, ...constants));
  return record(
    y,
    "checkpoint",
    [...inputs, ...params],
    (g, needs, held) => {
      const xs = held.map((x, i) => {
        const v = x.viewAs(x.shape, x.strides, x.offset);
        v.requiresGrad = i < inputs.length && needs[i];
        return v;
      });
      const again = enableGrad(() => fn(...xs));
      if (again.requiresGrad) backward(again, { grad: g });
      again.dispose();
      const grads = xs.map((x) => {
        const gx = x.grad;
        x.grad = null;
        x.dispose();
        return gx;
      });
      return [...grads.slice(0, inputs.length), ...params.map(() => null)];
    },
    // Views: the graph owns (and frees) these handles, the caller keeps its own.
    [...inputs, ...constants.map((c) => c.viewAs(c.shape, c.strides, c.offset))],
  );
}
