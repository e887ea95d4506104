// The Tensor: a typed view (shape, strides, offset) over a refcounted backend storage, plus the
// autograd fields. Ops live in src/ops; this file only knows storage, views, readback and disposal.
import type { Backend, Storage } from "./backend/backend.js";
import type { DType } from "./dtype.js";
import { BackendMismatchError, ArgumentError, DisposedError, fmtShape } from "./errors.js";
import { checkShape, contiguousStrides, numel, type Shape } from "./shape.js";

/** How a tensor was made, for backward: the inputs and a function from dL/dout to dL/dinputs. */
export interface GradNode {
  op: string;
  inputs: Tensor[];
  /** Returns one gradient per input (null where the input needs none); `needs[i]` says which are wanted. */
  backward: (gy: Tensor, needs: boolean[]) => (Tensor | null)[];
}

let nextTensorId = 1;
let defaultBackend: Backend | null = null;

/** Sets the backend that creation functions use when none is passed. */
export function setDefaultBackend(b: Backend | null): void {
  defaultBackend = b;
}

export const peekDefaultBackend = (): Backend | null => defaultBackend;

export function getDefaultBackend(): Backend {
  if (!defaultBackend)
    throw new ArgumentError(
      "no default backend: call `await initWebGPU()` (or setDefaultBackend(cpuBackend())) first, or pass { backend }",
    );
  return defaultBackend;
}

/** Scope bookkeeping, set by autograd.ts (kept here to avoid an import cycle at module load). */
export const scopeHooks = { track: (_t: Tensor): void => {} };

export class Tensor {
  readonly id = nextTensorId++;
  requiresGrad = false;
  grad: Tensor | null = null;
  gradFn: GradNode | null = null;
  /** Optional label shown in error messages (parameters get their module path). */
  name: string | undefined;
  private disposedFlag = false;
  /** Set by autograd.ts: the scope that will dispose this tensor, if any. */
  scope: Set<Tensor> | null = null;

  constructor(
    readonly storage: Storage,
    readonly shape: readonly number[],
    readonly strides: readonly number[] = contiguousStrides(shape),
    readonly offset = 0,
  ) {
    storage.refs++;
    scopeHooks.track(this);
  }

  get backend(): Backend {
    return this.storage.backend;
  }
  get dtype(): DType {
    return this.storage.dtype;
  }
  get rank(): number {
    return this.shape.length;
  }
  get size(): number {
    return numel(this.shape);
  }
  get disposed(): boolean {
    return this.disposedFlag;
  }

  /** True when elements are laid out row-major without gaps (the offset may be non-zero). */
  get isContiguous(): boolean {
    let acc = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== acc) return false;
      acc *= this.shape[i];
    }
    return true;
  }

  /** Throws DisposedError naming `op` if this tensor was disposed. */
  check(op: string): this {
    if (this.disposedFlag) {
      throw new DisposedError(
        `${op}: tensor ${this.name ?? `#${this.id}`} ${fmtShape(this.shape)} was used after dispose() ` +
          "(or after the tidy() scope that created it ended; return it from the scope or keep() it)",
      );
    }
    return this;
  }

  /** A new tensor sharing this storage with another shape/strides/offset (no copy, no autograd). */
  viewAs(shape: Shape, strides: readonly number[] = contiguousStrides(shape), offset = this.offset): Tensor {
    this.check("view");
    return new Tensor(this.storage, [...shape], [...strides], offset);
  }

  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    this.scope?.delete(this);
    this.scope = null;
    // gradFn stays: a disposed intermediate can still route gradients to its inputs as long as no
    // backward function needs its data (those throw DisposedError).
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
    if (--this.storage.refs === 0) this.storage.backend.release(this.storage);
  }

  /** Reads the elements in logical (row-major) order. The only sync point with the GPU. */
  async data(): Promise<Float32Array | Int32Array | Float64Array> {
    this.check("data");
    if (this.isContiguous) return this.backend.read(this.storage, this.offset, this.size);
    const { contiguous } = await import("./ops/movement.js");
    const c = contiguous(this);
    try {
      return await c.data();
    } finally {
      c.dispose();
    }
  }

  /** Nested arrays of numbers, like `torch.Tensor.tolist()`. */
  async toArray(): Promise<NestedArray> {
    const flat = Array.from(await this.data());
    return nest(flat, this.shape);
  }

  /** The value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new ArgumentError(`item: tensor has shape ${fmtShape(this.shape)}, expected one element`);
    return (await this.data())[0];
  }

  toString(): string {
    return `Tensor(${fmtShape(this.shape)}, ${this.dtype}${this.requiresGrad ? ", requiresGrad" : ""})`;
  }
}

export type NestedArray = number | NestedArray[];

function nest(flat: number[], shape: readonly number[]): NestedArray {
  if (shape.length === 0) return flat[0];
  const [d, ...rest] = shape;
  const step = numel(rest);
  return Array.from({ length: d }, (_, i) => nest(flat.slice(i * step, (i + 1) * step), rest));
}

/** A fresh, uninitialised contiguous tensor on `backend`. */
export function emptyTensor(backend: Backend, shape: Shape, dtype: DType = "f32"): Tensor {
  checkShape("empty", shape);
  return new Tensor(backend.alloc(dtype, numel(shape)), [...shape]);
}

/** Checks that all tensors live on one backend and are not disposed; returns that backend. */
export function sameBackend(op: string, ...ts: Tensor[]): Backend {
  const b = ts[0].check(op).backend;
  for (const t of ts) {
    t.check(op);
    if (t.backend !== b)
      throw new BackendMismatchError(
        `${op}: tensors live on different backends (${b.description} and ${t.backend.description}); move them with toBackend()`,
      );
  }
  return b;
}
