// F16/BF16 conversions: decoding checked exhaustively against the IEEE formula, rounding checked to
// be nearest-even on every half-way point and on random floats, NaN and Inf kept.
import { describe, expect, it } from "vitest";
import { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16 } from "../src/index.js";

const ALL_16_BIT = Uint16Array.from({ length: 65536 }, (_, i) => i);
const f32FromBits = (bits: number[]) => new Float32Array(new Uint32Array(bits).buffer);

function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
}

/** xorshift32, seeded: random float32 bit patterns. */
function randomBits(count: number, seed: number): number[] {
  let x = seed;
  return Array.from({ length: count }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  });
}

/** `got` is a nearest representable value to x among `below`/`above`, ties to the even encoding. */
function expectNearestEven(x: number, got: number, candidates: [value: number, bits: number][], gotBits: number) {
  const distance = Math.abs(got - x);
  for (const [value, bits] of candidates) {
    const d = Math.abs(value - x);
    expect(distance <= d).toBe(true);
    if (d === distance && bits !== gotBits) expect(gotBits & 1).toBe(0);
  }
}

describe("F16", () => {
  it("decodes all 65536 bit patterns exactly", () => {
    const decoded = f16ToFloat32(ALL_16_BIT);
    for (let h = 0; h < 65536; h++) {
      const want = halfValue(h);
      if (Number.isNaN(want)) expect(Number.isNaN(decoded[h])).toBe(true);
      else expect(Object.is(decoded[h], want)).toBe(true);
    }
  });

  it("encodes every half exactly back to its bits, NaN to NaN", () => {
    const back = float32ToF16(f16ToFloat32(ALL_16_BIT));
    for (let h = 0; h < 65536; h++) {
      if (Number.isNaN(halfValue(h))) expect(Number.isNaN(halfValue(back[h]))).toBe(true);
      else expect(back[h]).toBe(h);
    }
  });

  it("rounds every half-way point to the even neighbour, and just off it to the nearer one", () => {
    for (let h = 0; h < 0x7bff; h++) {
      const a = halfValue(h);
      const b = halfValue(h + 1);
      const mid = (a + b) / 2; // 12 significant bits: exact in float32
      const even = h % 2 === 0 ? h : h + 1;
      const [up, down] = [Math.fround(mid) + Math.abs(mid) * 2 ** -20, Math.fround(mid) - Math.abs(mid) * 2 ** -20];
      const got = float32ToF16(new Float32Array([mid, -mid, up, down]));
      expect([got[0], got[1], got[2], got[3]]).toEqual([even, even | 0x8000, h + 1, h]);
    }
  });

  it("overflows to Inf at 65520 (the tie above 65504), underflows to ±0 below 2^-25", () => {
    const got = float32ToF16(
      new Float32Array([
        65504,
        65519.99,
        65520,
        1e9,
        -1e9,
        Number.POSITIVE_INFINITY,
        2 ** -24,
        2 ** -25,
        2 ** -25 * 1.01,
        -(2 ** -26),
        0,
        -0,
      ]),
    );
    expect([...got]).toEqual([0x7bff, 0x7bff, 0x7c00, 0x7c00, 0xfc00, 0x7c00, 0x0001, 0x0000, 0x0001, 0x8000, 0, 0x8000]);
  });

  it("keeps NaN a NaN (payloads in the low bits too) with its sign", () => {
    const got = float32ToF16(f32FromBits([0x7fc00000, 0x7f800001, 0xffc00001, 0x7fbfffff]));
    for (const h of got) expect(Number.isNaN(halfValue(h))).toBe(true);
    expect(got[2] & 0x8000).toBe(0x8000);
  });

  it("rounds random floats to the nearest half", () => {
    const values = f32FromBits(randomBits(20000, 12345).map((b) => (b & 0x8fffffff) | 0x30000000)); // |x| around the half range
    const halves = float32ToF16(values);
    values.forEach((x, i) => {
      const h = halves[i];
      const neighbours: [number, number][] = [h - 1, h + 1]
        .filter((n) => (n & 0x7fff) <= 0x7bff && n >= 0 && n < 65536 && (n & 0x8000) === (h & 0x8000))
        .map((n) => [halfValue(n), n]);
      if ((h & 0x7fff) <= 0x7bff) expectNearestEven(x, halfValue(h), neighbours, h);
      else expect(Math.abs(x)).toBeGreaterThanOrEqual(65520);
    });
  });
});

describe("BF16", () => {
  it("decodes by shifting into the high half (exact, all 65536 patterns)", () => {
    const decoded = new Uint32Array(bf16ToFloat32(ALL_16_BIT).buffer);
    for (let h = 0; h < 65536; h++) expect(decoded[h]).toBe((h << 16) >>> 0);
  });

  it("rounds to nearest even, including exact ties, carries into Inf, keeps NaN", () => {
    const got = float32ToBf16(
      f32FromBits([0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0x7f7fffff, 0xff7fffff, 0x7f800000, 0x7f800001, 0xff800001, 0x00008000]),
    );
    expect([...got]).toEqual([0x3f80, 0x3f82, 0x3f81, 0x3f80, 0x7f80, 0xff80, 0x7f80, 0x7fc0, 0xffc0, 0x0000]);
  });

  it("rounds random floats to the nearest bf16", () => {
    const values = f32FromBits(randomBits(20000, 777).filter((b) => (b & 0x7f800000) !== 0x7f800000));
    const rounded = float32ToBf16(values);
    const decoded = bf16ToFloat32(rounded);
    values.forEach((x, i) => {
      const h = rounded[i];
      if ((h & 0x7fff) >= 0x7f80) return expect(Math.abs(x)).toBeGreaterThan(3.38e38);
      const sameSign = [h - 1, h + 1].filter((n) => (n & 0x8000) === (h & 0x8000) && (n & 0x7fff) < 0x7f80);
      const neighbours = bf16ToFloat32(new Uint16Array(sameSign));
      expectNearestEven(
        x,
        decoded[i],
        sameSign.map((n, j) => [neighbours[j], n]),
        h,
      );
    });
  });
});
