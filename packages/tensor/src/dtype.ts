// Element types: f32 is the compute type; i32 holds ids and labels; f16/bf16 store frozen weights
// at half the memory and are widened to f32 inside the shaders that read them.

export type DType = "f32" | "i32" | "f16" | "bf16";

export const DTYPES: readonly DType[] = ["f32", "i32", "f16", "bf16"];

export const bytesPerElement = (d: DType): number => (d === "f16" || d === "bf16" ? 2 : 4);

export const isFloat = (d: DType): boolean => d !== "i32";

export const isHalf = (d: DType): boolean => d === "f16" || d === "bf16";

/** Bytes a tensor of `numel` elements takes on the GPU (16-bit data is packed two per u32). */
export const storageBytes = (numel: number, d: DType): number => Math.max(4, Math.ceil((numel * bytesPerElement(d)) / 4) * 4);

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f32 -> bf16 bits, round to nearest even (as torch does); NaN stays NaN. */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

/** f32 -> IEEE half bits, round to nearest even, with subnormals, inf and NaN. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Rounds a number to what the dtype can store (the CPU oracle keeps float64 otherwise). */
export function roundTo(d: DType, x: number): number {
  switch (d) {
    case "f32":
      return Math.fround(x);
    case "i32":
      return x | 0;
    case "f16":
      return f16BitsToF32(f32ToF16Bits(x));
    case "bf16":
      return bf16BitsToF32(f32ToBf16Bits(x));
  }
}
