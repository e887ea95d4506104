// The narrow surfaces backends implement: storage for every backend, plus what GPU kernels call
// (dispatch, copy, validation, limits). Ops see these interfaces, never a concrete backend class.
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
  /** The largest `bytesInUse` since the backend was created or `resetPeak()` was last called. */
  peakBytes: number;
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
  /** Starts a new peak measurement (`memory().peakBytes` = the current bytes in use). */
  resetPeak(): void;
  /** Waits until all submitted work finished. */
  sync(): Promise<void>;
}

/** Uniform values of one dispatch: `u` fields are u32, `i` fields i32, `f` fields f32 (in this order). */
export interface Params {
  u?: Record<string, number>;
  i?: Record<string, number>;
  f?: Record<string, number>;
}

/**
 * A byte window of a storage bound to one kernel binding. Storages may be larger than one binding
 * can hold (`maxStorageBufferBindingSize`); kernels then bind windows and offset their indices.
 */
export interface Window {
  storage: Storage;
  /** A multiple of `limits.minStorageBufferOffsetAlignment`. */
  byteOffset: number;
  byteLength: number;
}

export type Binding = Storage | Window;

export interface Dispatch {
  /** Identifies the WGSL: same key, same code (the params are not part of it). */
  key: string;
  /** Builds the WGSL on a pipeline-cache miss. Bindings: 0 = params `p`, then inputs, then outputs. */
  wgsl: () => string;
  params?: Params;
  inputs: Binding[];
  outputs: Binding[];
  /** Workgroup counts; a single number is a 1-D count, split over x and y when above the 65535 limit. */
  grid: number | [number, number, number];
  /** Optional FLOP count, for BALORA_DEBUG's GFLOP/s. */
  flops?: number;
}

export interface GpuLimits {
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  readonly minStorageBufferOffsetAlignment: number;
  readonly maxComputeWorkgroupStorageSize: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
}

/** What GPU kernels call: the WebGPU backend implements it (in Node through Dawn, in browsers natively). */
export interface GpuBackend extends Backend {
  readonly kind: "webgpu";
  readonly limits: GpuLimits;
  /** What kernels may assume: a CPU implementation (lavapipe) and a fixed subgroup size. */
  readonly traits: { readonly software: boolean; readonly subgroupSize: number | null; readonly fallback?: boolean };
  dispatch(d: Dispatch): void;
  /** Copies bytes between storages, in stream order with the dispatches. */
  copy(src: Storage, srcByte: number, dst: Storage, dstByte: number, bytes: number): void;
  /**
   * Registers a validation message for a kernel and returns its code and the error storage to bind as
   * an extra output (WGSL: `reportWgsl`). A report is thrown as IndexError at the next readback.
   */
  validation(message: string): { code: number; err: Storage };
}
