// The SVD term: gradients vs float64 finite differences (WebGPU vs the oracle), randomized vs exact on
// low-rank-plus-noise logits, and its edge cases (vacuous, all-masked, one row, ±1e4, repeated σ).
import * as T from "@balora/tensor";
import { checkOp } from "@balora/tensor/testing";
import { describe, expect, it } from "vitest";
import { type SvdTermOptions, svdTerm } from "../src/svd.js";
import { cpu, finiteDiff, normals, testBackend, valueAndGrads } from "./helpers.js";

const base: SvdTermOptions = { k: 3, denominator: "frobenius", scope: "batch", method: "exact", niter: 2, oversample: 5 };
const noReport = () => {};

/** Rank-r signal with decaying strengths plus noise, [n, V]. */
function lowRankPlusNoise(n: number, V: number, r: number, noise: number, seed: number): number[] {
  const u = normals(n * r, seed);
  const v = normals(V * r, seed + 1);
  const e = normals(n * V, seed + 2, noise);
  return Array.from({ length: n * V }, (_, i) => {
    const [a, b] = [Math.floor(i / V), i % V];
    let s = e[i];
    for (let q = 0; q < r; q++) s += u[a * r + q] * v[b * r + q] * 0.7 ** q;
    return Math.fround(s);
  });
}

describe("SVD term on materialised logits", () => {
  const rowMask = [1, 1, 0, 1, 1, 1, 0, 1, 1];
  for (const [name, o] of [
    ["top-3 / ‖Z‖_F", base],
    ["top-3 / Σσ", { ...base, denominator: "sum" }],
  ] as const)
    it(`${name}: WebGPU vs oracle, oracle vs finite differences`, () =>
      checkOp(
        `svd ${name}`,
        (z) => svdTerm(z, T.tensor(rowMask, [9], { backend: z.backend }), o as SvdTermOptions, noReport),
        [{ shape: [9, 23], values: lowRankPlusNoise(9, 23, 5, 0.3, 11) }],
        { atol: 2e-6, rtol: 2e-5, gradAtol: 2e-5, gradRtol: 1e-3, fdTol: 1e-6, fdSamples: 40 },
      ));

  it("randomized (q = k + 5, niter 2) is within 1e-3 relative of exact on low-rank-plus-noise logits", async () => {
    const b = await testBackend();
    const [n, V] = [64, 300];
    const z = T.tensor(lowRankPlusNoise(n, V, 12, 0.02, 3), [n, V], { backend: b });
    const m = T.ones([n], { backend: b });
    const o = { ...base, k: 10 };
    const exact = await svdTerm(z, m, o, noReport).item();
    const approx = await svdTerm(z, m, { ...o, method: "randomized" }, noReport).item();
    expect(exact).toBeLessThan(-0.5);
    expect(Math.abs(approx - exact) / Math.abs(exact)).toBeLessThan(1e-3);
  });
});

describe("SVD edge cases", () => {
  it("fewer valid rows than k: vacuous — value 0, zero gradient, reported", async () => {
    for (const b of [cpu, await testBackend()]) {
      const reports: (boolean | number)[] = [];
      const report = async (f: boolean | T.Tensor) => reports.push(typeof f === "boolean" ? f : await f.item());
      const r = await valueAndGrads(b, [{ values: normals(8 * 10, 1), shape: [8, 10], grad: true }], (z) => {
        const m = T.tensor([1, 1, 0, 0, 0, 0, 0, 0], [8], { backend: b });
        return svdTerm(z, m, base, (f) => void report(f));
      });
      await new Promise((res) => setTimeout(res, 10));
      expect(Object.is(r.value, 0)).toBe(true);
      expect(Math.max(...r.grads[0].map(Math.abs))).toBe(0);
      expect(reports).toEqual([1]);
      // k ≥ the number of columns (an NLU head with C ≤ k): statically vacuous, reported at once
      const seen: unknown[] = [];
      const v = svdTerm(T.tensor(normals(8 * 3, 2), [8, 3], { backend: b }), T.ones([8], { backend: b }), base, (f) => seen.push(f));
      expect(await v.item()).toBe(0);
      expect(seen).toEqual([true]);
    }
  });

  it("all-masked batch: 0 and no NaN in value or gradient", async () => {
    for (const b of [cpu, await testBackend()]) {
      const r = await valueAndGrads(b, [{ values: normals(8 * 10, 1), shape: [8, 10], grad: true }], (z) =>
        svdTerm(z, T.zeros([8], { backend: b }), { ...base, k: 1 }, noReport),
      );
      expect(r.value === 0).toBe(true);
      expect(r.grads[0].every((g) => g === 0)).toBe(true);
    }
  });

  it("a single valid row with k = 1: σ_1 = ‖Z‖_F, value −1, zero gradient", async () => {
    for (const b of [cpu, await testBackend()]) {
      const r = await valueAndGrads(b, [{ values: normals(5 * 10, 4), shape: [5, 10], grad: true }], (z) =>
        svdTerm(z, T.tensor([0, 0, 1, 0, 0], [5], { backend: b }), { ...base, k: 1 }, noReport),
      );
      expect(r.value).toBeCloseTo(-1, 6);
      expect(Math.max(...r.grads[0].map(Math.abs))).toBeLessThan(1e-6);
    }
  });

  it("logits of ±1e4: finite, WebGPU matches the oracle", async () => {
    const vals = normals(6 * 12, 5).map((v, i) => (i % 7 === 0 ? 1e4 : i % 11 === 0 ? -1e4 : v));
    const run = async (b: T.Backend) =>
      valueAndGrads(b, [{ values: vals, shape: [6, 12], grad: true }], (z) => svdTerm(z, T.ones([6], { backend: b }), base, noReport));
    const [c, g] = [await run(cpu), await run(await testBackend())];
    expect(Number.isFinite(g.value) && g.grads[0].every(Number.isFinite)).toBe(true);
    expect(Math.abs(g.value - c.value)).toBeLessThan(1e-5 * Math.abs(c.value));
  });

  it("degenerate singular values: equal σ across the top-k boundary give the exact value and a finite gradient", async () => {
    // Orthogonal rows of equal norm: every σ = 2, so the value is −k·2 / (2·√n) exactly.
    const n = 6;
    const V = 9;
    const vals = Array.from({ length: n * V }, (_, i) => (i % V === Math.floor(i / V) ? 2 : 0));
    for (const b of [cpu, await testBackend()]) {
      const r = await valueAndGrads(b, [{ values: vals, shape: [n, V], grad: true }], (z) =>
        svdTerm(z, T.ones([n], { backend: b }), base, noReport),
      );
      expect(r.value).toBeCloseTo(-3 / Math.sqrt(n), 5);
      expect(r.grads[0].every(Number.isFinite)).toBe(true);
    }
  });

  it("degenerate σ inside the top-k (3, 3, 3 then 1): the gradient is the projector's, as finite differences say", async () => {
    const [n, V] = [5, 7];
    // Z = diag(3, 3, 3, 1, 0.5) padded, rotated by a fixed orthogonal mix of two columns so it is not trivially sparse.
    const d = [3, 3, 3, 1, 0.5];
    const [c, s] = [Math.cos(0.4), Math.sin(0.4)];
    const vals: number[] = [];
    for (let i = 0; i < n; i++)
      for (let j = 0; j < V; j++) {
        const e = (col: number) => (col === i ? d[i] : 0);
        vals.push(Math.fround(j === 0 ? c * e(0) - s * e(5) : j === 5 ? s * e(0) + c * e(5) : e(j)));
      }
    const inputs = [{ values: vals, shape: [n, V], grad: true }];
    const fn = (z: T.Tensor) => svdTerm(z, T.ones([n], { backend: z.backend }), base, noReport);
    const r = await valueAndGrads(cpu, inputs, fn);
    const idx = [0, 3, 8, 12, 16, 20, 24, 30];
    const fd = finiteDiff(inputs, fn, 0, idx);
    idx.forEach((k, q) => expect(Math.abs(r.grads[0][k] - fd[q])).toBeLessThan(1e-6));
    const g = await valueAndGrads(await testBackend(), inputs, fn);
    expect(Math.abs(g.value - r.value)).toBeLessThan(1e-6);
    idx.forEach((k) => expect(Math.abs(g.grads[0][k] - r.grads[0][k])).toBeLessThan(2e-5));
  });
});

describe("gramEigh: the Gram matrix's eigenpairs in one dispatch", () => {
  it("WebGPU: G·v_i = λ_i·v_i, orthonormal V, descending λ, equal to the float64 oracle (odd n, rank-deficient)", async () => {
    const { gramEigh } = await import("../src/fused/eigh.js");
    const [n, r] = [37, 20]; // rank 20 < n: 17 zero eigenvalues
    const x = lowRankPlusNoise(n, r, r, 0, 21);
    const gram = (b: T.Backend) => {
      const X = T.tensor(x, [n, r], { backend: b });
      return T.matmul(X, X, { transB: true });
    };
    const ref = gramEigh(gram(cpu));
    const got = gramEigh(gram(await testBackend()));
    const [lr, lg] = [await ref.values.data(), await got.values.data()];
    const [vr, vg] = [await ref.vectors.data(), await got.vectors.data()];
    const G = await gram(cpu).data();
    for (let i = 0; i < n; i++) {
      if (i > 0) expect(lr[i]).toBeLessThanOrEqual(lr[i - 1]);
      // float64 oracle: G·v = λ·v to 1e-10
      for (let a = 0; a < n; a++) {
        let s = 0;
        for (let c = 0; c < n; c++) s += G[a * n + c] * vr[c * n + i];
        expect(Math.abs(s - lr[i] * vr[a * n + i])).toBeLessThan(1e-10 * lr[0]);
      }
      expect(Math.abs(lg[i] - lr[i])).toBeLessThan(1e-5 * lr[0]); // f32: absolute error ≈ eps·‖G‖
    }
    // f32: the leading eigenvectors agree up to sign, and V is orthonormal
    for (let i = 0; i < 5; i++) {
      let dot = 0;
      for (let a = 0; a < n; a++) dot += vg[a * n + i] * vr[a * n + i];
      expect(Math.abs(Math.abs(dot) - 1)).toBeLessThan(1e-5);
    }
    for (let i = 0; i < n; i++)
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let a = 0; a < n; a++) dot += vg[a * n + i] * vg[a * n + j];
        expect(Math.abs(dot - (i === j ? 1 : 0))).toBeLessThan(1e-5);
      }
  });
});
