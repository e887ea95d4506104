// The narrow surface every backend implements: storage allocation, upload, release and async read.
// Kernels live with their ops (src/ops/*): a WGSL path for WebGPU and a float64 path for the CPU oracle.
import type { DType } from "../dtype.js";

export interface Storage {
  readonly backend: Backend;
  readonly dtype: DType;
  /** Elements the storage holds (its tensors may view a part of it). */
  readonly numel: number;
  /** Live tensors viewing this storage; it is released when this drops to zero. */
  refs: number;
}

export interface MemoryStats {
  /** Bytes held by live storages. */
  bytesInUse: number;
  /** Bytes of free buffers kept for reuse. */
  bytesPooled: number;
  /** Live storages. */
  storages: number;
}

export interface Backend {
  readonly kind: "cpu" | "webgpu";
  /** Human-readable adapter description ("float64 CPU oracle" for the CPU backend). */
  readonly description: string;
  alloc(dtype: DType, numel: number): Storage;
  upload(dtype: DType, values: ArrayLike<number>): Storage;
  /** Uploads raw little-endian bytes already in the dtype's layout (f32/i32: 4 bytes, f16/bf16: 2). */
  uploadBytes(dtype: DType, bytes: Uint8Array): Storage;
  release(storage: Storage): void;
  /** Reads `numel` elements starting at element `offset`, as numbers of the storage's dtype. */
  read(storage: Storage, offset: number, numel: number): Promise<Float32Array | Int32Array | Float64Array>;
  memory(): MemoryStats;
  /** Waits until all submitted work finished. */
  sync(): Promise<void>;
}
