// Test harness: runs an op on the float64 CPU oracle and on WebGPU from the same random inputs,
// compares forward values and gradients, and checks the oracle's gradients by finite differences.
import { expect } from "vitest";
import {
  backward,
  cpuBackend,
  initWebGPU,
  mul,
  noGrad,
  Rng,
  sum,
  tensor,
  type Backend,
  type DType,
  type Tensor,
  type WebGPUBackend,
} from "../src/index.js";
import type { CpuStorage } from "../src/backend/cpu.js";
import { cpuValues } from "../src/ops/kernel.js";

export const cpu = cpuBackend();
let gpuPromise: Promise<WebGPUBackend> | undefined;
export const getGpu = (): Promise<WebGPUBackend> => (gpuPromise ??= initWebGPU());

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

export function makeValues(spec: InputSpec, rng: Rng): number[] {
  if (spec.values) return Array.from(spec.values);
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const lo = spec.low ?? -1;
  const hi = spec.high ?? 1;
  return Array.from({ length: n }, () =>
    spec.dtype === "i32" ? Math.floor(lo + (hi - lo) * rng.next()) : Math.fround(lo + (hi - lo) * rng.next()),
  );
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
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
  if (worst > 1) {
    expect.fail(`${what}: element ${worstAt} is ${actual[worstAt]}, expected ${expected[worstAt]} (atol ${atol}, rtol ${rtol})`);
  }
}

function build(b: Backend, specs: InputSpec[], values: number[][]): Tensor[] {
  return specs.map((s, i) => {
    const t = tensor(values[i], s.shape, { backend: b, dtype: s.dtype ?? "f32" });
    if ((s.dtype ?? "f32") === "f32" && s.grad !== false) t.requiresGrad = true;
    return t;
  });
}

/** Forward + backward on both backends; gradient check of the oracle by central differences. */
export async function checkOp(name: string, fn: (...xs: Tensor[]) => Tensor, specs: InputSpec[], opts: CheckOptions = {}): Promise<void> {
  const gpu = await getGpu();
  const rng = new Rng(opts.seed ?? 1234);
  const values = specs.map((s) => makeValues(s, rng));
  const atol = opts.atol ?? 1e-5;
  const rtol = opts.rtol ?? 1e-5;

  const xc = build(cpu, specs, values);
  const yc = fn(...xc);
  const gvals = makeValues({ shape: [...yc.shape] }, rng);
  const xg = build(gpu, specs, values);
  const yg = fn(...xg);
  expect(yg.shape, `${name}: output shape`).toEqual(yc.shape);
  expectClose(await yg.data(), await yc.data(), atol, rtol, `${name} forward`);

  const wantsGrad = specs.some((s) => (s.dtype ?? "f32") === "f32" && s.grad !== false);
  if (!wantsGrad || !yc.requiresGrad) return;
  const upstream = (b: Backend) => tensor(gvals, yc.shape, { backend: b });
  backward(sum(mul(yc, upstream(cpu))));
  backward(sum(mul(yg, upstream(gpu))));
  for (let i = 0; i < specs.length; i++) {
    if (!xc[i].requiresGrad) continue;
    expect(xc[i].grad, `${name}: cpu grad of input ${i}`).toBeTruthy();
    expect(xg[i].grad, `${name}: gpu grad of input ${i}`).toBeTruthy();
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
      if (err > 1) expect.fail(`${name}: d/dx${i}[${k}] analytic ${grad[k]} vs finite difference ${numeric}`);
    }
  }
}
