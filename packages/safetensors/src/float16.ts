// 16-bit floats as stored in safetensors (F16 = IEEE binary16, BF16 = top half of a float32),
// decoded to and rounded from Float32Array: round-to-nearest-even, NaN stays NaN, Inf stays Inf.

/** BF16 bits to float32: the bits are the high half of the float32. Exact. */
export function bf16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
  return new Float32Array(out.buffer);
}

/** float32 to BF16 bits, round-to-nearest-even; NaN stays a (quiet) NaN with its sign. */
export function float32ToBf16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i];
    if ((x & 0x7fffffff) > 0x7f800000) {
      out[i] = (x >>> 16) | 0x0040; // keep sign and top payload bits, force quiet so it stays NaN
    } else {
      out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16; // carries into the exponent (up to Inf) as it should
    }
  }
  return out;
}

/** F16 bits to float32. Exact (every binary16 value, subnormals included, is a float32). */
export function f16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const sign = (h & 0x8000) << 16;
    const exponent = (h >>> 10) & 0x1f;
    let mantissa = h & 0x3ff;
    if (exponent === 0x1f) {
      out[i] = sign | 0x7f800000 | (mantissa << 13); // Inf, or NaN with its payload
    } else if (exponent !== 0) {
      out[i] = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa === 0) {
      out[i] = sign; // ±0
    } else {
      // Subnormal: shift the leading 1 up to the implicit bit, lowering the exponent each time.
      let e = 113;
      while ((mantissa & 0x400) === 0) {
        mantissa <<= 1;
        e--;
      }
      out[i] = sign | (e << 23) | ((mantissa & 0x3ff) << 13);
    }
  }
  return new Float32Array(out.buffer);
}

/** float32 to F16 bits, round-to-nearest-even: overflow goes to ±Inf, underflow to subnormals or ±0. */
export function float32ToF16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16(bits[i]);
  return out;
}

function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >>> 13) : 0);
  const halfExponent = exponent - 112; // rebias 127 -> 15
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign; // below half the smallest subnormal: rounds to ±0
    const full = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    return sign | roundShiftEven(full, shift); // a carry to 0x400 is the smallest normal, correctly
  }
  return sign | ((halfExponent << 10) + roundShiftEven(mantissa, 13)); // a carry bumps the exponent
}

/** value >> shift, rounded to nearest, ties to even. */
function roundShiftEven(value: number, shift: number): number {
  const kept = value >>> shift;
  const rest = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept;
}
