// Module: a tree of named submodules and weights discovered from object properties (like torch's
// nn.Module), so other packages can walk, freeze, load and replace layers by their HF names.
import { ArgumentError } from "../errors.js";
import { Tensor } from "../tensor.js";

export abstract class Module {
  /** Property names holding tensors that are not part of the state dict (e.g. RoPE inv_freq). */
  protected readonly nonPersistent = new Set<string>();
  training = true;

  /** Direct children, including those inside arrays (named `<prop>.<i>`). */
  *namedChildren(): Generator<[string, Module]> {
    for (const [k, v] of Object.entries(this)) {
      if (v instanceof Module) yield [k, v];
      else if (Array.isArray(v)) for (let i = 0; i < v.length; i++) if (v[i] instanceof Module) yield [`${k}.${i}`, v[i]];
    }
  }

  /** Every module in the tree (this one as ""), depth first, with dotted paths. */
  *namedModules(prefix = ""): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.namedChildren()) yield* child.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  /**
   * Every persistent tensor in the tree with its dotted path (the state-dict names). A tensor shared
   * by two modules (tied embeddings) is listed once, under its first path, like torch.
   */
  *namedParameters(prefix = "", seen = new Set<Tensor>()): Generator<[string, Tensor]> {
    for (const [k, v] of Object.entries(this)) {
      if (v instanceof Tensor && !this.nonPersistent.has(k) && !seen.has(v)) {
        seen.add(v);
        yield [prefix ? `${prefix}.${k}` : k, v];
      }
    }
    for (const [name, child] of this.namedChildren()) yield* child.namedParameters(prefix ? `${prefix}.${name}` : name, seen);
  }

  /** Tensors with requiresGrad (what an optimizer updates). */
  trainableParameters(): Tensor[] {
    return this.namedTrainableParameters().map(([, t]) => t);
  }

  /** [path, tensor] of every tensor with requiresGrad: an optimizer built from these saves its state by name. */
  namedTrainableParameters(): [string, Tensor][] {
    return [...this.namedParameters()].filter(([, t]) => t.requiresGrad);
  }

  /** The submodule at a dotted path ("model.layers.0.self_attn.q_proj"). */
  getSubmodule(path: string): Module {
    if (path === "") return this;
    const parts = path.split(".");
    const last = parts.pop()!;
    const parent = resolveContainer(this, parts);
    const m = Array.isArray(parent) ? parent[Number(last)] : (parent as unknown as Record<string, unknown>)[last];
    if (!(m instanceof Module)) throw new ArgumentError(`getSubmodule: no module at "${path}"`);
    return m;
  }

  /** Replaces the submodule at a dotted path (used by adapter injection). */
  setSubmodule(path: string, module: Module): void {
    const parts = path.split(".");
    const last = parts.pop()!;
    const parent = resolveContainer(this, parts);
    if (Array.isArray(parent)) {
      const i = Number(last);
      if (!(parent[i] instanceof Module)) throw new ArgumentError(`setSubmodule: no module at "${path}"`);
      parent[i] = module;
      return;
    }
    const record = parent as unknown as Record<string, unknown>;
    if (!(record[last] instanceof Module)) throw new ArgumentError(`setSubmodule: no module at "${path}"`);
    record[last] = module;
  }

  /** Sets requiresGrad on every parameter of the tree. */
  requiresGrad_(flag: boolean): this {
    for (const [, t] of this.namedParameters()) if (t.dtype === "f32") t.requiresGrad = flag;
    return this;
  }

  train(flag = true): this {
    for (const [, m] of this.namedModules()) m.training = flag;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Disposes every tensor of the tree. */
  dispose(): void {
    for (const [, t] of this.namedParameters()) t.dispose();
    for (const [, m] of this.namedModules()) for (const k of m.nonPersistent) (m as unknown as Record<string, Tensor>)[k]?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Walks dotted path parts through modules and arrays; returns the container holding the last part. */
function resolveContainer(root: Module, parts: string[]): Module | Module[] {
  let cur: unknown = root;
  for (const part of parts) {
    const next = Array.isArray(cur) ? cur[Number(part)] : (cur as Record<string, unknown>)[part];
    if (!(next instanceof Module) && !Array.isArray(next))
      throw new ArgumentError(`no module at "${parts.join(".")}" (stopped at "${part}")`);
    cur = next;
  }
  return cur as Module | Module[];
}
