// Shared test plumbing: fixture paths, golden tensors as float arrays, tolerant comparisons.
import { fileURLToPath } from "node:url";
import { bf16ToFloat32, openSafetensors } from "@balora/safetensors";
import { expect } from "vitest";

export const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

export { cpuOnly, testBackend as getGpu } from "@balora/tensor/testing";

export interface Golden {
  get(name: string): { data: Float64Array; shape: number[] };
  has(name: string): boolean;
  names: string[];
}

/** Every tensor of `<fixture>/golden.safetensors`, as float64 (integers exactly). */
export async function readGolden(name: string): Promise<Golden> {
  const f = await openSafetensors(`${fixture(name)}/golden.safetensors`);
  const all = new Map<string, { data: Float64Array; shape: number[] }>();
  for await (const t of f) {
    const raw = t.dtype === "BF16" ? bf16ToFloat32(t.data as Uint16Array) : (t.data as ArrayLike<number | bigint>);
    all.set(t.name, { data: Float64Array.from(raw as ArrayLike<number>, (v) => Number(v)), shape: t.shape });
  }
  await f.close();
  return {
    get: (n) => {
      const v = all.get(n);
      if (!v) throw new Error(`golden ${name} has no ${n}`);
      return v;
    },
    has: (n) => all.has(n),
    names: [...all.keys()],
  };
}

/** Max |a − b| over positions where `keep(i)` is true. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, keep: (i: number) => boolean = () => true): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) if (keep(i)) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** ‖a − b‖∞ / max(‖b‖∞, tiny): a relative error that ignores near-zero entries' noise. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / Math.max(s, 1e-30);
}
