// The autograd graph and the memory discipline around it: grad mode, `record` (an op attaches its
// backward and hands over what it saved), node freeing, and tidy/keep scopes. Imports no op.
import { ArgumentError } from "./errors.js";
import { profileTag } from "./profile.js";
import type { Tensor } from "./tensor.js";

/** Returns one gradient per input (null where none is needed); `saved` are the tensors the op saved. */
export type BackwardFn = (gy: Tensor, needs: boolean[], saved: Tensor[]) => (Tensor | null)[];

/** How a tensor was made: its inputs, the backward rule, and what the rule reads (owned by the graph). */
export interface GradNode {
  readonly op: string;
  inputs: Tensor[];
  backward: BackwardFn;
  saved: Tensor[];
  /** True once backward consumed the node (or it became unreachable): its saved tensors are gone. */
  freed: boolean;
  /** The profile tag the forward ran under; the backward rule runs under it too. */
  tag: string | null;
}

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

/** Runs `fn` with graph recording on, e.g. a recomputation inside a backward rule. */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

// ---- recording ---------------------------------------------------------------------------------

/**
 * Attaches `backward` to `out` when grad mode is on and an input requires grad. `saved` is what the
 * backward reads; the graph owns it from here: tensors the op created are adopted (they leave every
 * scope), inputs and `out` itself are held through views, and all of them are disposed when the node
 * is freed — right after backward used it, or when nothing can reach it any more. Without a graph
 * the adopted tensors are disposed at once. Ops never free what they saved.
 */
export function record(out: Tensor, op: string, inputs: Tensor[], backward: BackwardFn, saved: Tensor[] = []): Tensor {
  const held = (t: Tensor) => t === out || inputs.includes(t);
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) {
    for (const t of new Set(saved)) if (!held(t)) t.dispose();
    return out;
  }
  const owned = new Set<Tensor>();
  const own = (t: Tensor): Tensor => {
    if (held(t)) return keep(t.viewAs(t.shape, t.strides, t.offset));
    if (owned.has(t)) return t;
    owned.add(t);
    return keep(t);
  };
  const node: GradNode = { op, inputs, backward, saved: saved.map(own), freed: false, tag: profileTag() };
  for (const t of inputs) if (t.gradFn && !t.gradFn.freed) t.graphUsers++;
  out.requiresGrad = true;
  out.gradFn = node;
  return out;
}

/**
 * Frees `t`'s node: disposes what it saved and lets go of its inputs. With `cascade`, inputs that were
 * disposed and are no longer used by any other node are freed too (iteratively: graphs can be deep).
 */
export function freeNode(t: Tensor, cascade = true): void {
  const stack = [t];
  while (stack.length) {
    const node = stack.pop()!.gradFn;
    if (!node || node.freed) continue;
    node.freed = true;
    for (const s of node.saved) s.dispose();
    node.saved = [];
    for (const x of node.inputs) {
      if (!x.gradFn || x.gradFn.freed) continue;
      x.graphUsers--;
      if (cascade && x.disposed && x.graphUsers === 0) stack.push(x);
    }
    node.inputs = [];
  }
}

// ---- scopes ------------------------------------------------------------------------------------

const scopes: Set<Tensor>[] = [];

/** Called by the Tensor constructor: the innermost tidy scope (if any) will dispose `t`. */
export function trackInScope(t: Tensor): void {
  const s = scopes[scopes.length - 1];
  if (s) {
    s.add(t);
    t.scope = s;
  }
}

/** Removes `t` from every scope: it lives until you call `t.dispose()`. Returns `t`. */
export function keep<T extends Tensor>(t: T): T {
  t.scope?.delete(t);
  t.scope = null;
  return t;
}

type Container = Tensor | void | undefined | null | number | string | boolean | Container[] | { [k: string]: Container };

function collect(x: unknown, out: Set<Tensor>): void {
  if (isTensorLike(x)) out.add(x);
  else if (Array.isArray(x)) for (const v of x) collect(v, out);
  else if (x && typeof x === "object" && Object.getPrototypeOf(x) === Object.prototype) for (const v of Object.values(x)) collect(v, out);
}

/** Tensors are recognised structurally here, so this module needs no runtime import of tensor.ts. */
const isTensorLike = (x: unknown): x is Tensor => !!x && typeof x === "object" && (x as { [TENSOR]?: true })[TENSOR] === true;

/** Brand set on Tensor.prototype (see tensor.ts). */
export const TENSOR: unique symbol = Symbol.for("balora.tensor");

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
