// Shared test helpers: seeded data, value + gradient of a scalar on a backend, normwise relative errors.
import * as T from "@balora/tensor";

export { cpu, cpuOnly, expectClose, testBackend } from "@balora/tensor/testing";

/** Seeded uniform values in [lo, hi), f32-representable. */
export function values(n: number, seed: number, lo = -1, hi = 1): number[] {
  const rng = new T.Rng(seed);
  return Array.from({ length: n }, () => Math.fround(lo + (hi - lo) * rng.next()));
}

/** Seeded normal values times `std`, f32-representable. */
export function normals(n: number, seed: number, std = 1): number[] {
  const rng = new T.Rng(seed);
  return Array.from({ length: n }, () => Math.fround(rng.normal() * std));
}

/** ‖a − b‖ / ‖b‖ (0 when both are 0). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return n === 0 ? Math.sqrt(d) : Math.sqrt(d / n);
}

/** Runs `fn` on fresh leaf tensors (requiresGrad where asked), backpropagates, returns the value and the gradients. */
export async function valueAndGrads(
  backend: T.Backend,
  inputs: { values: number[]; shape: number[]; grad?: boolean; dtype?: T.DType }[],
  fn: (...xs: T.Tensor[]) => T.Tensor,
): Promise<{ value: number; grads: Float64Array[] }> {
  const xs = inputs.map((s) => {
    const t = T.tensor(s.values, s.shape, { backend, dtype: s.dtype ?? "f32" });
    if (s.grad) t.requiresGrad = true;
    return t;
  });
  const y = fn(...xs);
  const value = await y.item();
  if (y.requiresGrad) T.backward(y);
  const grads = await Promise.all(
    xs.map(async (x, i) =>
      inputs[i].grad ? Float64Array.from(x.grad ? await x.grad.data() : new Float32Array(x.size)) : new Float64Array(0),
    ),
  );
  for (const x of xs) x.dispose();
  y.dispose();
  return { value, grads };
}

/** Central finite differences in float64 on the CPU oracle of `fn` w.r.t. input `which` at `count` sampled entries. */
export function finiteDiff(
  inputs: { values: number[]; shape: number[]; dtype?: T.DType }[],
  fn: (...xs: T.Tensor[]) => T.Tensor,
  which: number,
  idx: number[],
  h = 1e-6,
): number[] {
  const f = (vals: number[]) =>
    T.noGrad(() => {
      const xs = inputs.map((s, i) =>
        T.tensor(i === which ? vals : s.values, s.shape, { backend: T.cpuBackend(), dtype: s.dtype ?? "f32" }),
      );
      const y = fn(...xs);
      const v = (y.storage as unknown as { data: Float64Array }).data[y.offset];
      for (const x of xs) x.dispose();
      y.dispose();
      return v;
    });
  return idx.map((k) => {
    const p = [...inputs[which].values];
    const m = [...inputs[which].values];
    p[k] += h;
    m[k] -= h;
    return (f(p) - f(m)) / (2 * h);
  });
}
