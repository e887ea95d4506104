// The float64 CPU oracle backend: storage is a Float64Array whatever the dtype (16-bit dtypes are
// rounded on upload), so tests can compare WebGPU results against exact-ish math.
import type { DType } from "../dtype.js";
import { bf16ToFloat32, f16ToFloat32 } from "@balora/safetensors";
import { bytesPerElement, roundValues } from "../dtype.js";
import type { Backend, MemoryStats, Storage } from "./backend.js";

export class CpuStorage implements Storage {
  refs = 0;
  constructor(
    readonly backend: CpuBackend,
    readonly dtype: DType,
    readonly data: Float64Array,
  ) {}
  get numel(): number {
    return this.data.length;
  }
}

export class CpuBackend implements Backend {
  readonly kind = "cpu" as const;
  readonly description = "float64 CPU oracle";
  private live = 0;
  private liveBytes = 0;
  private peak = 0;

  alloc(dtype: DType, numel: number): CpuStorage {
    this.live++;
    this.liveBytes += numel * 8;
    if (this.liveBytes > this.peak) this.peak = this.liveBytes;
    return new CpuStorage(this, dtype, new Float64Array(numel));
  }

  upload(dtype: DType, values: ArrayLike<number>): CpuStorage {
    const s = this.alloc(dtype, values.length);
    // The oracle keeps f32 data in float64; other dtypes are rounded as the GPU stores them.
    s.data.set(dtype === "f32" ? values : roundValues(dtype, values));
    return s;
  }

  uploadBytes(dtype: DType, bytes: Uint8Array): CpuStorage {
    const n = bytes.byteLength / bytesPerElement(dtype);
    const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    const { buffer, byteOffset } = aligned;
    const values =
      dtype === "f32"
        ? new Float32Array(buffer, byteOffset, n)
        : dtype === "i32"
          ? new Int32Array(buffer, byteOffset, n)
          : (dtype === "bf16" ? bf16ToFloat32 : f16ToFloat32)(new Uint16Array(buffer, byteOffset, n));
    const s = this.alloc(dtype, n);
    s.data.set(values);
    return s;
  }

  release(storage: Storage): void {
    this.live--;
    this.liveBytes -= storage.numel * 8;
  }

  async read(storage: Storage, offset: number, numel: number): Promise<Float64Array> {
    return (storage as CpuStorage).data.slice(offset, offset + numel);
  }

  memory(): MemoryStats {
    return { bytesInUse: this.liveBytes, bytesPooled: 0, storages: this.live, peakBytes: this.peak };
  }

  resetPeak(): void {
    this.peak = this.liveBytes;
  }

  async sync(): Promise<void> {}
}

let shared: CpuBackend | undefined;
/** The process-wide CPU oracle backend. */
export const cpuBackend = (): CpuBackend => (shared ??= new CpuBackend());
