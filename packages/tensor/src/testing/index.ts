// Test helpers shared by every package (import "@balora/tensor/testing"): the backend under test
// (WebGPU, or the float64 oracle with BALORA_BACKEND=cpu), tolerance checks, and the op checker.
import type { Backend } from "../backend/backend.js";
import type { CpuStorage } from "../backend/cpu.js";
import { cpuBackend } from "../backend/cpu.js";
import { initWebGPU } from "../backend/shared-webgpu.js";
import { backward } from "../backward.js";
import { Rng, tensor } from "../creation.js";
import type { DType } from "../dtype.js";
import { noGrad } from "../graph.js";
import { mul } from "../ops/elementwise.js";
import { cpuValues } from "../ops/kernel.js";
import { sum } from "../ops/reduce.js";
import type { Tensor } from "../tensor.js";

/** The float64 CPU oracle every check compares against. */
export const cpu = cpuBackend();

const env = (typeof process !== "undefined" && process.env) || {};

/** True when `BALORA_BACKEND=cpu`: every "GPU" test runs on the float64 oracle (no Vulkan driver needed). */
export const cpuOnly: boolean = env.BALORA_BACKEND === "cpu";

let backendPromise: Promise<Backend> | undefined;
/** The backend under test: the shared WebGPU backend, or the CPU oracle when `cpuOnly`. */
export const testBackend = (): Promise<Backend> => (backendPromise ??= cpuOnly ? Promise.resolve(cpu) : initWebGPU());

export interface InputSpec {
  shape: number[];
  dtype?: DType;
  /** Uniform range for random values (default [-1, 1]). */
  low?: number;
  high?: number;
  /** Explicit values instead of random ones. */
  values?: ArrayLike<number>;
  /** Whether to check this input's gradient (default: true for f32). */
  grad?: boolean;
}

export interface CheckOptions {
  atol?: number;
  rtol?: number;
  /** Gradient tolerances (default: forward ones). */
  gradAtol?: number;
  gradRtol?: number;
  /** Finite-difference check of the CPU oracle's gradients (default true). */
  fd?: boolean;
  /** Max elements per input probed by finite differences. */
  fdSamples?: number;
  fdStep?: number;
  fdTol?: number;
  seed?: number;
}

/** Seeded values for an input spec (f32-representable, integers for i32). */
export function makeValues(spec: InputSpec, rng: Rng): number[] {
  if (spec.values) return Array.from(spec.values);
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const lo = spec.low ?? -1;
  const hi = spec.high ?? 1;
  return Array.from({ length: n }, () =>
    spec.dtype === "i32" ? Math.floor(lo + (hi - lo) * rng.next()) : Math.fround(lo + (hi - lo) * rng.next()),
  );
}

/** Throws naming the worst element when |actual − expected| > atol + rtol·|expected| anywhere. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length}, expected ${expected.length}`);
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i];
    const a = actual[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (e === a) continue;
    const err = Math.abs(a - e) / (atol + rtol * Math.abs(e));
    if (!(err <= worst)) {
      worst = Number.isNaN(err) ? Infinity : err;
      worstAt = i;
    }
  }
  if (worst > 1)
    throw new Error(`${what}: element ${worstAt} is ${actual[worstAt]}, expected ${expected[worstAt]} (atol ${atol}, rtol ${rtol})`);
}

/** Largest |a − b| over two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function build(b: Backend, specs: InputSpec[], values: number[][]): Tensor[] {
  return specs.map((s, i) => {
    const t = tensor(values[i], s.shape, { backend: b, dtype: s.dtype ?? "f32" });
    if ((s.dtype ?? "f32") === "f32" && s.grad !== false) t.requiresGrad = true;
    return t;
  });
}

/**
 * Runs `fn` on the backend under test and on the float64 oracle from the same random inputs,
 * compares forward values and gradients, and checks the oracle's gradients by central differences.
 */
export async function checkOp(name: string, fn: (...xs: Tensor[]) => Tensor, specs: InputSpec[], opts: CheckOptions = {}): Promise<void> {
  const device = await testBackend();
  const rng = new Rng(opts.seed ?? 1234);
  const values = specs.map((s) => makeValues(s, rng));
  const atol = opts.atol ?? 1e-5;
  const rtol = opts.rtol ?? 1e-5;

  const xc = build(cpu, specs, values);
  const yc = fn(...xc);
  const gvals = makeValues({ shape: [...yc.shape] }, rng);
  const xg = build(device, specs, values);
  const yg = fn(...xg);
  if (yg.shape.join() !== yc.shape.join()) throw new Error(`${name}: output shape [${yg.shape}] vs oracle [${yc.shape}]`);
  expectClose(await yg.data(), await yc.data(), atol, rtol, `${name} forward`);

  const wantsGrad = specs.some((s) => (s.dtype ?? "f32") === "f32" && s.grad !== false);
  if (!wantsGrad || !yc.requiresGrad) return;
  const upstream = (b: Backend) => tensor(gvals, yc.shape, { backend: b });
  backward(sum(mul(yc, upstream(cpu))));
  backward(sum(mul(yg, upstream(device))));
  for (let i = 0; i < specs.length; i++) {
    if (!xc[i].requiresGrad) continue;
    if (!xc[i].grad || !xg[i].grad) throw new Error(`${name}: no gradient for input ${i}`);
    expectClose(await xg[i].grad!.data(), await xc[i].grad!.data(), opts.gradAtol ?? atol, opts.gradRtol ?? rtol, `${name} grad[${i}]`);
  }
  if (opts.fd === false) return;
  // Finite differences in float64 on the oracle: f(x) = sum(fn(x) * g).
  const h = opts.fdStep ?? 1e-6;
  const tol = opts.fdTol ?? 1e-5;
  const objective = () =>
    noGrad(() => {
      const y = fn(...xc);
      const g = upstream(cpu);
      const yv = cpuValues(y);
      const gd = cpuValues(g);
      let s = 0;
      for (let k = 0; k < yv.length; k++) s += yv[k] * gd[k];
      y.dispose();
      g.dispose();
      return s;
    });
  for (let i = 0; i < specs.length; i++) {
    if (!xc[i].requiresGrad) continue;
    const data = (xc[i].storage as CpuStorage).data;
    const grad = await xc[i].grad!.data();
    const n = data.length;
    const samples = Math.min(n, opts.fdSamples ?? 24);
    for (let s = 0; s < samples; s++) {
      const k = samples === n ? s : Math.floor(rng.next() * n);
      const orig = data[k];
      data[k] = orig + h;
      const fp = objective();
      data[k] = orig - h;
      const fm = objective();
      data[k] = orig;
      const numeric = (fp - fm) / (2 * h);
      const err = Math.abs(numeric - grad[k]) / (tol + tol * Math.abs(numeric));
      if (err > 1) throw new Error(`${name}: d/dx${i}[${k}] analytic ${grad[k]} vs finite difference ${numeric}`);
    }
  }
}
