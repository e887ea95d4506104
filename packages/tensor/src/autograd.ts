// Reverse-mode autodiff at micrograd size (a tape of GradNodes, a topological sort, gradients summed
// per tensor) plus the memory discipline a training loop needs: noGrad, tidy scopes and keep().
import { ArgumentError } from "./errors.js";
import { add, fill } from "./ops/elementwise.js";
import { copyToContiguous } from "./ops/movement.js";
import { type GradNode, scopeHooks, Tensor } from "./tensor.js";

// ---- grad mode ---------------------------------------------------------------------------------

let gradEnabled = true;

export const isGradEnabled = (): boolean => gradEnabled;

/** Runs `fn` without recording a graph (like torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Attaches a backward function to `out` if grad mode is on and any input requires grad.
 * Ops call this once; `backward` receives dL/dout and returns dL/dinput per input.
 */
export function record(out: Tensor, op: string, inputs: Tensor[], backward: GradNode["backward"]): Tensor {
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) return out;
  out.requiresGrad = true;
  out.gradFn = { op, inputs, backward };
  return out;
}

// ---- scopes ------------------------------------------------------------------------------------

const scopes: Set<Tensor>[] = [];

scopeHooks.track = (t: Tensor) => {
  const s = scopes[scopes.length - 1];
  if (s) {
    s.add(t);
    t.scope = s;
  }
};

/** Removes `t` from every scope: it lives until you call `t.dispose()`. Returns `t`. */
export function keep<T extends Tensor>(t: T): T {
  t.scope?.delete(t);
  t.scope = null;
  return t;
}

type Container = Tensor | void | undefined | null | number | string | boolean | Container[] | { [k: string]: Container };

function collect(x: unknown, out: Set<Tensor>): void {
  if (x instanceof Tensor) out.add(x);
  else if (Array.isArray(x)) for (const v of x) collect(v, out);
  else if (x && typeof x === "object" && Object.getPrototypeOf(x) === Object.prototype) for (const v of Object.values(x)) collect(v, out);
}

function endScope(scope: Set<Tensor>, result: unknown): void {
  const popped = scopes.pop();
  if (popped !== scope) throw new ArgumentError("tidy: scopes ended out of order (an async tidy overlapped another scope)");
  const survivors = new Set<Tensor>();
  collect(result, survivors);
  const parent = scopes[scopes.length - 1] ?? null;
  for (const t of scope) {
    if (survivors.has(t)) {
      t.scope = parent;
      parent?.add(t);
    } else t.dispose();
  }
}

/**
 * Runs `fn` and disposes every tensor it created except those it returns (in a Tensor, array or
 * plain object) and those passed to keep(). With an async `fn`, do not interleave other scopes.
 */
export function tidy<T extends Container | Promise<Container>>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    endScope(scope, undefined);
    throw e;
  }
  if (result instanceof Promise) {
    return result.then(
      (r) => {
        endScope(scope, r);
        return r;
      },
      (e) => {
        endScope(scope, undefined);
        throw e;
      },
    ) as T;
  }
  endScope(scope, result);
  return result;
}

// ---- backward ----------------------------------------------------------------------------------

function topoSort(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS: deep graphs (long sequences of ops) must not overflow the JS stack.
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const inputs = top[0].gradFn?.inputs ?? [];
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
 * Backpropagates from `root` (a scalar unless `seed` is given), adding into `.grad` of every leaf
 * that requires grad. Intermediate gradients are freed as soon as they are consumed.
 */
export function backward(root: Tensor, seed?: Tensor): void {
  root.check("backward");
  if (!root.requiresGrad)
    throw new ArgumentError(`backward: ${root} does not require grad (no input had requiresGrad = true, or it was built under noGrad)`);
  if (!seed && root.size !== 1) throw new ArgumentError(`backward: ${root} is not a scalar; pass the upstream gradient explicitly`);
  const order = topoSort(root);
  const grads = new Map<Tensor, Tensor>();
  const owned = new Set<Tensor>();
  const put = (t: Tensor, g: Tensor) => {
    // Each map entry owns its tensor object; a gradient handed to two inputs becomes two views.
    if (owned.has(g)) g = g.viewAs(g.shape, g.strides, g.offset);
    owned.add(g);
    const prev = grads.get(t);
    if (prev) {
      grads.set(t, add(prev, g));
      owned.add(grads.get(t)!);
      prev.dispose();
      g.dispose();
    } else grads.set(t, g);
  };
  noGrad(() => {
    put(root, seed ? seed.viewAs(seed.shape, seed.strides, seed.offset) : fill(root.backend, root.shape, 1));
    for (const t of order) {
      const gy = grads.get(t);
      if (!gy) continue;
      grads.delete(t);
      const node = t.gradFn;
      if (!node) {
        accumulateLeaf(t, gy);
        continue;
      }
      const needs = node.inputs.map((x) => x.requiresGrad);
      const gins = node.backward(gy, needs);
      let passed = false;
      gins.forEach((g, i) => {
        if (!g || !needs[i]) {
          if (g && g !== gy) g.dispose();
          return;
        }
        if (g === gy) passed = true;
        put(node.inputs[i], g);
      });
      if (!passed) gy.dispose();
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
