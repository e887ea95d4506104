// Seeded dropout: the keep mask is a pure hash of (key, element index), identical in WGSL and in the
// CPU oracle, so backward recomputes it instead of storing it, and a resumed run draws the same masks.
import { ArgumentError } from "../errors.js";
import { record } from "../graph.js";
import { emptyTensor, type Tensor } from "../tensor.js";
import { copyToContiguous } from "./copy.js";
import { identity } from "./elementwise.js";
import { cpuData, cpuValues, groups, inputDecl, isGpu, LINEAR_WG, MAIN, outputDecl, paramsDecl, requireFloat } from "./kernel.js";

const WG = 64;

/** PCG-style 32-bit hash (same constants as the WGSL `pcg`). */
export function pcgHash(v: number): number {
  const s = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const w = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
  return ((w >>> 22) ^ w) >>> 0;
}

/** FNV-1a of a string, e.g. a parameter path, as a 32-bit stream id. */
export function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Where a mask comes from: a run's seed, the optimizer step and a stream (e.g. the layer's module path). */
export interface DropoutKey {
  seed: number;
  step?: number;
  stream?: number | string;
}

/** The 32-bit key of a mask: a pure function of (seed, step, stream), never of a counter. */
export function dropoutKey(k: number | DropoutKey): number {
  if (typeof k === "number") {
    if (!Number.isInteger(k) || k < 0 || k > 0xffffffff)
      throw new ArgumentError(`dropout: key must be a 32-bit unsigned integer, got ${k}`);
    return k >>> 0;
  }
  const { seed, step = 0 } = k;
  for (const [name, v] of [
    ["seed", seed],
    ["step", step],
  ] as const)
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
      throw new ArgumentError(`dropout: ${name} must be a 32-bit unsigned integer, got ${v}`);
  const stream = typeof k.stream === "string" ? hashString(k.stream) : (k.stream ?? 0) >>> 0;
  return pcgHash((pcgHash((pcgHash(seed) ^ step) >>> 0) ^ stream) >>> 0);
}

/** Uniform [0, 1) for element i under a key. */
export const dropoutUniform = (key: number, i: number): number => (pcgHash((i ^ pcgHash(key)) >>> 0) >>> 8) / 16777216;

/** x·scale where uniform(key, i) >= p, else 0 (x contiguous). */
function maskScale(xIn: Tensor, p: number, key: number): Tensor {
  const x = xIn.isContiguous ? xIn : copyToContiguous(xIn);
  const scale = 1 / (1 - p);
  const out = emptyTensor(x.backend, x.shape);
  const b = x.backend;
  const n = out.size;
  if (n > 0 && isGpu(b)) {
    const params = { u: { n, xo: x.offset, key }, f: { p, scale } };
    b.dispatch({
      key: `dropout:${x.dtype}`,
      params,
      inputs: [x.storage],
      outputs: [out.storage],
      grid: groups(n, WG),
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", x.dtype)}${outputDecl(2, "y")}
fn pcg(v: u32) -> u32 { let s = v * 747796405u + 2891336453u; let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u; return (w >> 22u) ^ w; }
${MAIN(WG)} {
  let i = ${LINEAR_WG} * ${WG}u + lid.x;
  if (i >= p.n) { return; }
  let u = f32(pcg(i ^ pcg(p.key)) >> 8u) / 16777216.0;
  y[i] = select(0.0, load_x(p.xo + i) * p.scale, u >= p.p);
}`,
    });
  } else if (n > 0) {
    const xv = cpuValues(x);
    const o = cpuData(out);
    for (let i = 0; i < n; i++) o[i] = dropoutUniform(key, i) >= p ? xv[i] * scale : 0;
  }
  if (x !== xIn) x.dispose();
  return out;
}

/**
 * Zeroes each element with probability `p` and scales the rest by 1/(1−p). The mask depends only on
 * `key` (a 32-bit integer, or { seed, step, stream }), so the same key gives the same mask on every
 * backend and after a resume. p = 0 returns a view of `x`.
 */
export function dropout(x: Tensor, p: number, key: number | DropoutKey): Tensor {
  requireFloat("dropout", x);
  if (!(p >= 0 && p < 1)) throw new ArgumentError(`dropout: p must be in [0, 1), got ${p}`);
  const k = dropoutKey(key);
  if (p === 0) return identity(x);
  const y = maskScale(x, p, k);
  return record(y, "dropout", [x], (g) => [maskScale(g, p, k)]);
}
