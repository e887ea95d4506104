// The Tensor: a typed view (shape, strides, offset) over a refcounted backend storage, plus the
// autograd fields. Ops live in src/ops; this file only knows storage, views, readback and disposal.
import type { Backend, Storage } from "./backend/backend.js";
import type { DType } from "./dtype.js";
import { ArgumentError, BackendMismatchError, DisposedError, fmtShape } from "./errors.js";
import { freeNode, type GradNode, TENSOR, trackInScope } from "./graph.js";
import { checkShape, contiguousStrides, numel, type Shape, stridedOffsets, viewSpan } from "./shape.js";

let nextTensorId = 1;
let defaultBackend: Backend | null = null;

/** Sets the backend that creation functions use when none is passed. */
export function setDefaultBackend(b: Backend | null): void {
  defaultBackend = b;
}

/** The default backend, or null when none is set. */
export const peekDefaultBackend = (): Backend | null => defaultBackend;

/** The default backend; throws a message saying how to set one. */
export function getDefaultBackend(): Backend {
  if (!defaultBackend)
    throw new ArgumentError(
      "no default backend: call `await initWebGPU()` (or setDefaultBackend(cpuBackend())) first, or pass { backend }",
    );
  return defaultBackend;
}

export class Tensor {
  readonly id = nextTensorId++;
  requiresGrad = false;
  grad: Tensor | null = null;
  /** The node that made this tensor (null for leaves and for tensors made without a graph). */
  gradFn: GradNode | null = null;
  /** Live graph nodes that list this tensor as an input; its own node is freed when this is 0 and it is disposed. */
  graphUsers = 0;
  /** Optional label shown in error messages (parameters get their module path). */
  name: string | undefined;
  /** The tidy scope that will dispose this tensor, if any (set by graph.ts). */
  scope: Set<Tensor> | null = null;
  private disposedFlag = false;

  constructor(
    readonly storage: Storage,
    readonly shape: readonly number[],
    readonly strides: readonly number[] = contiguousStrides(shape),
    readonly offset = 0,
  ) {
    storage.refs++;
    trackInScope(this);
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

  /** Throws DisposedError naming `op` when this tensor was disposed; returns the tensor. */
  assertLive(op: string): this {
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
    this.assertLive("view");
    return new Tensor(this.storage, [...shape], [...strides], offset);
  }

  /**
   * Releases this view's hold on the storage (freed when no view is left) and its gradient. Its graph
   * node, if any, stays while later nodes need it to route gradients, and is freed after that.
   */
  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    this.scope?.delete(this);
    this.scope = null;
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
    if (--this.storage.refs === 0) this.storage.backend.release(this.storage);
    if (this.gradFn && this.graphUsers === 0) freeNode(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Reads the elements in logical (row-major) order. The only sync point with the GPU. */
  async data(): Promise<Float32Array | Int32Array | Float64Array> {
    this.assertLive("data");
    if (this.isContiguous) return this.backend.read(this.storage, this.offset, this.size);
    // A strided view: read the span it covers and gather on the host.
    const [lo, hi] = viewSpan(this.shape, this.strides, this.offset);
    const span = await this.backend.read(this.storage, lo, hi - lo);
    const offs = stridedOffsets(this.shape, this.strides, this.offset - lo);
    const out = new (span.constructor as Float32ArrayConstructor)(offs.length);
    for (let i = 0; i < offs.length; i++) out[i] = span[offs[i]];
    return out;
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
Object.defineProperty(Tensor.prototype, TENSOR, { value: true });

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
  const b = ts[0].assertLive(op).backend;
  for (const t of ts) {
    t.assertLive(op);
    if (t.backend !== b)
      throw new BackendMismatchError(
        `${op}: tensors live on different backends (${b.description} and ${t.backend.description}); move them with toBackend()`,
      );
  }
  return b;
}
