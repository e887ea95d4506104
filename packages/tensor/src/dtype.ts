// Element types: f32 is the compute type; i32 holds ids and labels; f16/bf16 store frozen weights
// at half the memory and are widened to f32 inside the shaders that read them.
import { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16 } from "@balora/safetensors";

export type DType = "f32" | "i32" | "f16" | "bf16";

export const DTYPES: readonly DType[] = ["f32", "i32", "f16", "bf16"];

export const bytesPerElement = (d: DType): number => (d === "f16" || d === "bf16" ? 2 : 4);

export const isHalf = (d: DType): boolean => d === "f16" || d === "bf16";

/** Bytes a tensor of `numel` elements takes on the GPU (16-bit data is packed two per u32). */
export const storageBytes = (numel: number, d: DType): number => Math.max(4, Math.ceil((numel * bytesPerElement(d)) / 4) * 4);

/** Rounds values to what the dtype can store, as float32 numbers (16-bit: round-to-nearest-even, like torch). */
export function roundValues(d: DType, values: ArrayLike<number>): Float32Array | Int32Array {
  if (d === "i32") return Int32Array.from(values);
  const f = Float32Array.from(values);
  if (d === "bf16") return bf16ToFloat32(float32ToBf16(f));
  if (d === "f16") return f16ToFloat32(float32ToF16(f));
  return f;
}
