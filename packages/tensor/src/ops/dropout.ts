// Seeded dropout: the keep mask is a pure hash of (seed, element index), identical in WGSL and in
// the CPU oracle, so backward recomputes it instead of storing it.
import { record } from "../autograd.js";
import { ArgumentError } from "../errors.js";
import type { Tensor } from "../tensor.js";
import { identity, mapElementwise } from "./elementwise.js";
import { requireFloat } from "./kernel.js";

/** PCG-style 32-bit hash (same constants as the WGSL `pcg`). */
export function pcgHash(v: number): number {
  const s = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const w = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
  return ((w >>> 22) ^ w) >>> 0;
}

/** Uniform [0, 1) for element i under a seed. */
export const dropoutUniform = (seed: number, i: number): number => (pcgHash((i ^ pcgHash(seed)) >>> 0) >>> 8) / 16777216;

function maskScale(x: Tensor, p: number, seed: number): Tensor {
  const scale = 1 / (1 - p);
  return mapElementwise(
    "dropout",
    [x, p, scale, seed],
    ([v, pp, sc, sd]) => `select(0.0, ${v} * ${sc}, f32(pcg(i ^ pcg(u32(${sd}))) >> 8u) / 16777216.0 >= ${pp})`,
    (v, pp, sc, sd, i) => (dropoutUniform(sd, i) >= pp ? v * sc : 0),
  );
}

/**
 * Zeroes each element with probability `p` and scales the rest by 1/(1−p). The same `seed` gives the
 * same mask on every backend. p = 0 returns a view of `x`.
 */
export function dropout(x: Tensor, p: number, seed: number): Tensor {
  requireFloat("dropout", x);
  if (!(p >= 0 && p < 1)) throw new ArgumentError(`dropout: p must be in [0, 1), got ${p}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffff)
    throw new ArgumentError(`dropout: seed must be an integer in [0, 2^24), got ${seed}`);
  if (p === 0) return identity(x);
  const y = maskScale(x, p, seed);
  return record(y, "dropout", [x], (g) => [maskScale(g, p, seed)]);
}
