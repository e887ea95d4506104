// Reverse-mode autodiff at micrograd size: a topological sort of the recorded nodes, one backward
// rule per node, gradients summed per tensor. The graph frees each node's saved tensors as it goes.
import { ArgumentError } from "./errors.js";
import { freeNode, keep, noGrad } from "./graph.js";
import { withProfileTag } from "./profile.js";
import { add } from "./ops/elementwise.js";
import { accumulateInto, copyToContiguous, fill } from "./ops/copy.js";
import { sameShape } from "./shape.js";
import type { Tensor } from "./tensor.js";

export interface BackwardOptions {
  /** dL/droot when `root` is not a scalar (default: ones for a scalar root). */
  grad?: Tensor;
  /** Keep the graph (and what its ops saved) for another backward through it (default false). */
  retainGraph?: boolean;
}

function topoSort(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>([root]);
  // Iterative DFS: deep graphs (long sequences of ops) must not overflow the JS stack.
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1];
    const node = top[0].gradFn;
    if (node?.freed)
      throw new ArgumentError(
        `backward: the graph through ${node.op} was already freed by an earlier backward(); ` +
          "pass { retainGraph: true } to the first backward() to run through it twice",
      );
    const inputs = node?.inputs ?? [];
    if (top[1] < inputs.length) {
      const next = inputs[top[1]++];
      if (next.requiresGrad && !seen.has(next)) {
        seen.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(top[0]);
      stack.pop();
    }
  }
  return order.reverse();
}

/**
 * Backpropagates from `root` (a scalar unless `opts.grad` is given), adding into `.grad` of every
 * leaf that requires grad. Intermediate gradients are freed as soon as they are consumed, and each
 * node with what it saved right after its rule ran (unless `retainGraph`).
 */
export function backward(root: Tensor, opts: BackwardOptions = {}): void {
  root.assertLive("backward");
  if (!root.requiresGrad)
    throw new ArgumentError(`backward: ${root} does not require grad (no input had requiresGrad = true, or it was built under noGrad)`);
  if (!opts.grad && root.size !== 1) throw new ArgumentError(`backward: ${root} is not a scalar; pass the upstream gradient as { grad }`);
  const order = topoSort(root);
  const grads = new Map<Tensor, Tensor>();
  const put = (t: Tensor, g: Tensor) => {
    const prev = grads.get(t);
    if (!prev) return void grads.set(t, g);
    // A sum this backward owns alone is added to in place; otherwise a new one is made.
    if (
      prev.storage.refs === 1 &&
      prev.isContiguous &&
      prev.dtype === "f32" &&
      g.dtype === "f32" &&
      prev.size === g.size &&
      sameShape(prev.shape, g.shape)
    )
      accumulateInto(prev, g);
    else {
      grads.set(t, add(prev, g));
      prev.dispose();
    }
    g.dispose();
  };
  noGrad(() => {
    const seed = opts.grad;
    put(root, seed ? seed.viewAs(seed.shape, seed.strides, seed.offset) : fill(root.backend, root.shape, 1));
    for (const t of order) {
      const gy = grads.get(t);
      grads.delete(t);
      const node = t.gradFn;
      if (!node) {
        if (gy) accumulateLeaf(t, gy);
        continue;
      }
      if (gy) {
        const needs = node.inputs.map((x) => x.requiresGrad);
        const gins = withProfileTag(node.tag, () => node.backward(gy, needs, node.saved));
        // Each map entry owns its tensor object: a gradient handed on twice becomes two views.
        const handed = new Set<Tensor>();
        gins.forEach((g, i) => {
          if (!g) return;
          if (!needs[i]) return void (g !== gy && g.dispose());
          put(node.inputs[i], handed.has(g) || g === gy ? g.viewAs(g.shape, g.strides, g.offset) : g);
          handed.add(g);
        });
        gy.dispose();
      }
      if (!opts.retainGraph) freeNode(t, false);
    }
  });
}

function accumulateLeaf(t: Tensor, g: Tensor): void {
  // A leaf's .grad must own its storage: clipping and zeroing write into it in place.
  if (g.storage.refs > 1 || !g.isContiguous || g.offset !== 0) {
    const c = copyToContiguous(g);
    g.dispose();
    g = c;
  }
  if (t.grad) {
    const sum = add(t.grad, g);
    t.grad.dispose();
    g.dispose();
    g = sum;
  }
  t.grad = keep(g);
}
