// Tests of src/linalg: every routine on the float64 CPU oracle and on WebGPU (f32), checked against
// mathematical identities computed on the host in float64 and against each other, on odd sizes.
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { eigh, qr, svd, svdLowRank, svdvals } from "../src/linalg/index.js";
import { checkOp, cpu, getGpu, makeValues } from "./helpers.js";

type Backend = T.Backend;
const both = async (): Promise<Backend[]> => [cpu, await getGpu()];
const isCpu = (b: Backend) => b.kind === "cpu";

// ---- host-side float64 helpers (independent of the code under test) -----------------------------

/** A matrix as rows of float64 numbers. */
interface Mat {
  rows: number;
  cols: number;
  d: Float64Array;
}
const mat = async (t: T.Tensor): Promise<Mat> => ({ rows: t.shape[0], cols: t.shape[1], d: Float64Array.from(await t.data()) });
const at = (a: Mat, i: number, j: number) => a.d[i * a.cols + j];

function hostMatmul(a: Mat, b: Mat, transA = false): Mat {
  const [m, k] = transA ? [a.cols, a.rows] : [a.rows, a.cols];
  const n = b.cols;
  const d = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) {
      const x = transA ? at(a, p, i) : at(a, i, p);
      for (let j = 0; j < n; j++) d[i * n + j] += x * at(b, p, j);
    }
  return { rows: m, cols: n, d };
}

const frob = (a: Mat) => Math.sqrt(a.d.reduce((s, v) => s + v * v, 0));

/** ‖A − U·diag(s)·Vᵀ‖_F / ‖A‖_F. */
function reconstructionError(a: Mat, u: Mat, s: Float64Array, v: Mat): number {
  let num = 0;
  for (let i = 0; i < a.rows; i++)
    for (let j = 0; j < a.cols; j++) {
      let r = 0;
      for (let c = 0; c < s.length; c++) r += at(u, i, c) * s[c] * at(v, j, c);
      num += (at(a, i, j) - r) ** 2;
    }
  return Math.sqrt(num) / frob(a);
}

/** max |XᵀX − I| over the columns of X. */
function orthonormalityError(x: Mat): number {
  const g = hostMatmul(x, x, true);
  let worst = 0;
  for (let i = 0; i < g.rows; i++) for (let j = 0; j < g.cols; j++) worst = Math.max(worst, Math.abs(at(g, i, j) - (i === j ? 1 : 0)));
  return worst;
}

/** n×k with orthonormal columns: modified Gram-Schmidt (twice) of a seeded Gaussian matrix. */
function randomOrthonormal(n: number, k: number, seed: number): Mat {
  const rng = new T.Rng(seed);
  const d = Float64Array.from({ length: n * k }, () => rng.normal());
  for (let pass = 0; pass < 2; pass++)
    for (let j = 0; j < k; j++) {
      for (let p = 0; p < j; p++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += d[i * k + j] * d[i * k + p];
        for (let i = 0; i < n; i++) d[i * k + j] -= dot * d[i * k + p];
      }
      let nrm = 0;
      for (let i = 0; i < n; i++) nrm += d[i * k + j] ** 2;
      for (let i = 0; i < n; i++) d[i * k + j] /= Math.sqrt(nrm);
    }
  return { rows: n, cols: k, d };
}

/** U·diag(s)·Vᵀ on the host, for a matrix with a known spectrum. */
function withSpectrum(m: number, n: number, s: number[], seed: number): Mat {
  const u = randomOrthonormal(m, s.length, seed);
  const v = randomOrthonormal(n, s.length, seed + 1);
  const us: Mat = { rows: m, cols: s.length, d: u.d.map((x, e) => x * s[e % s.length]) };
  const vt: Mat = { rows: s.length, cols: n, d: new Float64Array(s.length * n) };
  for (let i = 0; i < n; i++) for (let c = 0; c < s.length; c++) vt.d[c * n + i] = at(v, i, c);
  return hostMatmul(us, vt);
}

const randomValues = (m: number, n: number, seed: number) => makeValues({ shape: [m, n] }, new T.Rng(seed));
const upload = (values: ArrayLike<number>, shape: number[], b: Backend) => T.tensor(Array.from(values), shape, { backend: b });

const expectDescending = (s: Float64Array, what: string) => {
  for (let i = 1; i < s.length; i++) expect(s[i], `${what}: s[${i}] <= s[${i - 1}]`).toBeLessThanOrEqual(s[i - 1]);
};

/** The sign rule: the largest-|.| entry of each column is positive. */
function expectSignRule(v: Mat, what: string): void {
  for (let c = 0; c < v.cols; c++) {
    let best = 0;
    for (let r = 1; r < v.rows; r++) if (Math.abs(at(v, r, c)) > Math.abs(at(v, best, c))) best = r;
    expect(at(v, best, c), `${what}: largest entry of column ${c} is positive`).toBeGreaterThan(0);
  }
}

/** Columns of x and y agree up to sign: 1 − |x_i·y_i| ≤ tol for unit columns. */
function expectSameColumnsUpToSign(x: Mat, y: Mat, count: number, tol: number, what: string): void {
  for (let c = 0; c < count; c++) {
    let dot = 0;
    for (let r = 0; r < x.rows; r++) dot += at(x, r, c) * at(y, r, c);
    expect(1 - Math.abs(dot), `${what}: column ${c}`).toBeLessThanOrEqual(tol);
  }
}

function expectRelClose(actual: Float64Array, expected: Float64Array, rtol: number, atol: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++)
    expect(Math.abs(actual[i] - expected[i]), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`).toBeLessThanOrEqual(
      atol + rtol * Math.abs(expected[i]),
    );
}

const dispose = (...ts: (T.Tensor | null | undefined)[]) => ts.forEach((t) => t?.dispose());

/** Identity tolerances: f32 on WebGPU, float64 on the oracle. */
const tolerances = (b: Backend) => (isCpu(b) ? { rec: 1e-10, orth: 1e-10 } : { rec: 1e-4, orth: 2e-5 });

const SHAPES: [number, number][] = [
  [7, 5],
  [33, 17],
  [17, 33],
  [64, 40],
  [100, 3],
  [1, 6],
  [9, 9],
];

// ---- qr ------------------------------------------------------------------------------------------

describe("qr (Householder)", () => {
  it("Q·R = A, QᵀQ = I, R upper triangular, on tall, square and wide matrices; GPU matches the oracle", async () => {
    for (const [m, n] of [...SHAPES, [5, 8] as [number, number]]) {
      const values = randomValues(m, n, m * 131 + n);
      const rs: Mat[] = [];
      for (const b of await both()) {
        const a = upload(values, [m, n], b);
        const { q, r } = qr(a);
        const k = Math.min(m, n);
        expect(q.shape).toEqual([m, k]);
        expect(r.shape).toEqual([k, n]);
        const [A, Q, R] = [await mat(a), await mat(q), await mat(r)];
        const qrA = hostMatmul(Q, R);
        const err = frob({ ...A, d: A.d.map((x, i) => x - qrA.d[i]) }) / frob(A);
        expect(err, `${b.kind} ${m}×${n}: ‖QR − A‖/‖A‖`).toBeLessThanOrEqual(isCpu(b) ? 1e-12 : 1e-6);
        expect(orthonormalityError(Q), `${b.kind} ${m}×${n}: QᵀQ = I`).toBeLessThanOrEqual(isCpu(b) ? 1e-12 : 1e-5);
        for (let i = 0; i < k; i++)
          for (let j = 0; j < Math.min(i, n); j++) expect(at(R, i, j), `${b.kind} ${m}×${n}: R[${i},${j}]`).toBe(0);
        rs.push(R);
        dispose(a, q, r);
      }
      // Same reflections on both backends: R agrees entry by entry (up to a row sign, to be safe).
      const [rc, rg] = rs;
      for (let i = 0; i < rc.rows; i++) {
        const sign = Math.sign(at(rc, i, i)) === Math.sign(at(rg, i, i)) ? 1 : -1;
        for (let j = 0; j < rc.cols; j++)
          expect(Math.abs(sign * at(rg, i, j) - at(rc, i, j)), `R[${i},${j}] gpu vs cpu`).toBeLessThanOrEqual(1e-5 * (1 + frob(rc)));
      }
    }
  });
});

// ---- svd -----------------------------------------------------------------------------------------

describe("svd (one-sided Jacobi)", () => {
  it("reconstructs A with orthonormal U, V, descending s and the sign rule; GPU matches the oracle", async () => {
    for (const [m, n] of SHAPES) {
      const values = randomValues(m, n, m * 977 + n);
      const results: { u: Mat; s: Float64Array; v: Mat }[] = [];
      for (const b of await both()) {
        const a = upload(values, [m, n], b);
        const r = svd(a);
        const k = Math.min(m, n);
        expect([r.u.shape, r.s.shape, r.v.shape]).toEqual([[m, k], [k], [n, k]]);
        const [A, U, V, S] = [await mat(a), await mat(r.u), await mat(r.v), Float64Array.from(await r.s.data())];
        const tol = tolerances(b);
        const what = `${b.kind} ${m}×${n}`;
        expect(reconstructionError(A, U, S, V), `${what}: ‖A − USVᵀ‖/‖A‖`).toBeLessThanOrEqual(tol.rec);
        expect(orthonormalityError(U), `${what}: UᵀU = I`).toBeLessThanOrEqual(tol.orth);
        expect(orthonormalityError(V), `${what}: VᵀV = I`).toBeLessThanOrEqual(tol.orth);
        expectDescending(S, what);
        expectSignRule(V, what);
        results.push({ u: U, s: S, v: V });
        dispose(a, r.u, r.s, r.v);
      }
      const [c, g] = results;
      expectRelClose(g.s, c.s, 1e-4, 1e-6 * c.s[0], `${m}×${n} s gpu vs cpu`);
      expectSameColumnsUpToSign(g.u, c.u, c.s.length, 1e-5, `${m}×${n} u gpu vs cpu`);
      expectSameColumnsUpToSign(g.v, c.v, c.s.length, 1e-5, `${m}×${n} v gpu vs cpu`);
    }
  });

  it("handles rank deficiency: zero singular values, the rest exact", async () => {
    // 20×12 of rank 4 (a product of 20×4 and 4×12): Jacobi must stop rotating noise against noise.
    const [m, n, rank] = [20, 12, 4];
    const left: Mat = { rows: m, cols: rank, d: Float64Array.from(randomValues(m, rank, 5)) };
    const right: Mat = { rows: rank, cols: n, d: Float64Array.from(randomValues(rank, n, 6)) };
    const A = hostMatmul(left, right);
    for (const b of await both()) {
      const a = upload(A.d, [m, n], b);
      const r = svd(a);
      const [U, V, S] = [await mat(r.u), await mat(r.v), Float64Array.from(await r.s.data())];
      const tol = tolerances(b);
      expect(reconstructionError(A, U, S, V), `${b.kind}: rank-4 reconstruction`).toBeLessThanOrEqual(tol.rec);
      for (let i = rank; i < n; i++) expect(S[i] / S[0], `${b.kind}: s[${i}] ≈ 0`).toBeLessThanOrEqual(isCpu(b) ? 1e-13 : 1e-5);
      expect(
        orthonormalityError({ ...U, cols: rank, d: U.d.filter((_, e) => e % n < rank) }),
        `${b.kind}: leading U orthonormal`,
      ).toBeLessThanOrEqual(tol.orth);
      expect(orthonormalityError(V), `${b.kind}: V orthonormal`).toBeLessThanOrEqual(tol.orth);
      dispose(a, r.u, r.s, r.v);
    }
  });

  it("reads strided views: svd(aᵀ) swaps the factors of svd(a)", async () => {
    for (const b of await both()) {
      const a = upload(randomValues(13, 8, 21), [13, 8], b);
      const view = T.transpose(a);
      const [r, rt] = [svd(a), svd(view)];
      const [S, St] = [Float64Array.from(await r.s.data()), Float64Array.from(await rt.s.data())];
      expectRelClose(St, S, isCpu(b) ? 1e-12 : 1e-5, 0, `${b.kind} s of aᵀ`);
      expectSameColumnsUpToSign(await mat(rt.u), await mat(r.v), S.length, isCpu(b) ? 1e-12 : 1e-5, `${b.kind} u of aᵀ = v of a`);
      expectSameColumnsUpToSign(await mat(rt.v), await mat(r.u), S.length, isCpu(b) ? 1e-12 : 1e-5, `${b.kind} v of aᵀ = u of a`);
      dispose(a, view, r.u, r.s, r.v, rt.u, rt.s, rt.v);
    }
  });

  it("takes 16-bit input (widened to f32)", async () => {
    const gpu = await getGpu();
    const values = randomValues(9, 7, 11);
    const a16 = T.tensor(values, [9, 7], { backend: gpu, dtype: "bf16" });
    const rounded = await a16.data();
    const r16 = svd(a16);
    const r32 = svd(upload(rounded, [9, 7], cpu));
    expectRelClose(Float64Array.from(await r16.s.data()), Float64Array.from(await r32.s.data()), 1e-5, 1e-6, "bf16 s");
    dispose(a16, r16.u, r16.s, r16.v, r32.u, r32.s, r32.v);
  });

  it("scales: 256×256 on the GPU (one dispatch per round of 128 disjoint pairs)", async () => {
    const gpu = await getGpu();
    const n = 256;
    const values = randomValues(n, n, 256);
    const a = upload(values, [n, n], gpu);
    await gpu.sync();
    const t0 = performance.now();
    const r = svd(a);
    const S = Float64Array.from(await r.s.data());
    const ms = performance.now() - t0;
    const [A, U, V] = [await mat(a), await mat(r.u), await mat(r.v)];
    const rec = reconstructionError(A, U, S, V);
    const [ou, ov] = [orthonormalityError(U), orthonormalityError(V)];
    console.log(
      `svd 256×256 on ${gpu.description}: ${ms.toFixed(0)} ms, ‖A − USVᵀ‖/‖A‖ = ${rec.toExponential(2)}, ` +
        `‖UᵀU − I‖max = ` +
        `${ou.toExponential(2)}, ‖VᵀV − I‖max = ${ov.toExponential(2)}`,
    );
    expect(rec).toBeLessThanOrEqual(1e-4);
    expect(ou).toBeLessThanOrEqual(2e-5);
    expect(ov).toBeLessThanOrEqual(2e-5);
    expectDescending(S, "256×256");
    dispose(a, r.u, r.s, r.v);
  });
});

// ---- eigh ----------------------------------------------------------------------------------------

describe("eigh", () => {
  it("A·V = V·Λ with orthonormal V and descending eigenvalues of both signs; GPU matches the oracle", async () => {
    for (const n of [5, 33, 40]) {
      const x = randomValues(n, n, n);
      const sym = Array.from({ length: n * n }, (_, e) => x[Math.floor(e / n) * n + (e % n)] + x[(e % n) * n + Math.floor(e / n)]);
      const found: Float64Array[] = [];
      for (const b of await both()) {
        const a = upload(sym, [n, n], b);
        const { values, vectors } = eigh(a);
        const [A, V, lam] = [await mat(a), await mat(vectors), Float64Array.from(await values.data())];
        const av = hostMatmul(A, V);
        let resid = 0;
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) resid = Math.max(resid, Math.abs(at(av, i, j) - at(V, i, j) * lam[j]));
        const what = `${b.kind} ${n}×${n}`;
        expect(resid / frob(A), `${what}: ‖AV − VΛ‖max/‖A‖`).toBeLessThanOrEqual(isCpu(b) ? 1e-13 : 2e-6);
        expect(orthonormalityError(V), `${what}: VᵀV = I`).toBeLessThanOrEqual(tolerances(b).orth);
        expect(lam[0]).toBeGreaterThan(0);
        expect(lam[n - 1]).toBeLessThan(0);
        expectDescending(lam, what);
        expectSignRule(V, what);
        found.push(lam);
        dispose(a, values, vectors);
      }
      expectRelClose(
        found[1],
        found[0],
        0,
        2e-6 * frob({ rows: n, cols: n, d: Float64Array.from(sym) }),
        `${n}×${n} eigenvalues gpu vs cpu`,
      );
    }
  });

  it("separates ±λ pairs and uses the symmetric part of a non-symmetric input", async () => {
    // Q·diag(3, −3, 1, 0)·Qᵀ plus an antisymmetric part that eigh must ignore.
    const n = 4;
    const q = randomOrthonormal(n, n, 3);
    const A = hostMatmul(
      { ...q, d: q.d.map((v, e) => v * [3, -3, 1, 0][e % n]) },
      { rows: n, cols: n, d: Float64Array.from({ length: n * n }, (_, e) => at(q, e % n, Math.floor(e / n))) },
    );
    const skewed = A.d.map((v, e) => v + (Math.floor(e / n) < e % n ? 0.5 : Math.floor(e / n) > e % n ? -0.5 : 0));
    for (const b of await both()) {
      const { values, vectors } = eigh(upload(skewed, [n, n], b));
      expectRelClose(
        Float64Array.from(await values.data()),
        Float64Array.from([3, 1, 0, -3]),
        0,
        isCpu(b) ? 1e-12 : 5e-6,
        `${b.kind} eigenvalues`,
      );
      dispose(values, vectors);
    }
  });
});

// ---- svdLowRank ----------------------------------------------------------------------------------

describe("svdLowRank (randomized, torch.svd_lowrank semantics)", () => {
  const spectrum = Array.from({ length: 30 }, (_, i) => 0.5 ** i);
  it("recovers the top-q of a 0.5^i spectrum to 1e-3 with niter=2 and almost exactly with niter=8", async () => {
    for (const [m, n] of [
      [70, 45],
      [45, 70],
    ]) {
      const A = withSpectrum(m, n, spectrum, m + n);
      const q = 6;
      for (const b of await both()) {
        const a = upload(A.d, [m, n], b);
        for (const [niter, rtol] of [
          [2, 1e-3],
          [8, isCpu(b) ? 1e-9 : 2e-6],
        ]) {
          const r = svdLowRank(a, q, { niter, seed: 7 });
          expect([r.u.shape, r.s.shape, r.v.shape]).toEqual([[m, q], [q], [n, q]]);
          const [U, V, S] = [await mat(r.u), await mat(r.v), Float64Array.from(await r.s.data())];
          const what = `${b.kind} ${m}×${n} niter=${niter}`;
          expectRelClose(S, Float64Array.from(spectrum.slice(0, q)), rtol, 0, what);
          expect(orthonormalityError(U), `${what}: UᵀU = I`).toBeLessThanOrEqual(tolerances(b).orth);
          expect(orthonormalityError(V), `${what}: VᵀV = I`).toBeLessThanOrEqual(tolerances(b).orth);
          expectSignRule(V, what);
          // The best rank-q approximation leaves ‖A − A_q‖_F = ‖s_{q+1..}‖.
          const tail = Math.sqrt(spectrum.slice(q).reduce((s, v) => s + v * v, 0));
          expect(reconstructionError(A, U, S, V) * frob(A), `${what}: rank-q residual`).toBeLessThanOrEqual(tail * 1.05);
          dispose(r.u, r.s, r.v);
        }
        a.dispose();
      }
    }
  });
});

// ---- svdvals -------------------------------------------------------------------------------------

describe("svdvals (top-k singular values with autograd)", () => {
  const spectrum40 = Array.from({ length: 40 }, (_, i) => 0.7 ** i);
  it("exact (Gram + eigh): values and dZ = U·diag(g)·Vᵀ match the oracle and finite differences", async () => {
    const opts = { atol: 1e-4, rtol: 1e-4, gradAtol: 2e-4, gradRtol: 1e-3 };
    await checkOp("svdvals wide", (z) => svdvals(z, 3, { method: "exact" }), [{ shape: [7, 12] }], opts);
    await checkOp("svdvals tall", (z) => svdvals(z, 2, { method: "exact" }), [{ shape: [13, 6] }], opts);
    await checkOp("svdvals all", (z) => svdvals(z, 5), [{ shape: [5, 9] }], opts);
  });

  it("randomized (svdLowRank): same gradient formula; exact when the sketch spans the matrix", async () => {
    const opts = { atol: 1e-4, rtol: 1e-4, gradAtol: 2e-4, gradRtol: 1e-3 };
    // q = min(k + oversample, N, V) = 6 = min(N, V): the basis is the whole column space.
    await checkOp("svdvals randomized full sketch", (z) => svdvals(z, 2, { method: "randomized" }), [{ shape: [6, 11] }], opts);
    // A genuine sketch (q = 4 < 15): GPU vs oracle only, no finite differences.
    await checkOp(
      "svdvals randomized sketch",
      (z) => svdvals(z, 2, { method: "randomized", oversample: 2, niter: 3 }),
      [{ shape: [15, 40] }],
      { ...opts, fd: false },
    );
  });

  it("randomized agrees with exact on a decaying spectrum; the default picks exact for small matrices", async () => {
    const A = withSpectrum(40, 90, spectrum40, 9);
    for (const b of await both()) {
      const z = upload(A.d, [40, 90], b);
      const exact = Float64Array.from(await svdvals(z, 4, { method: "exact" }).data());
      const fast = Float64Array.from(await svdvals(z, 4, { method: "randomized" }).data());
      const byDefault = Float64Array.from(await svdvals(z, 4).data());
      expectRelClose(exact, Float64Array.from(spectrum40.slice(0, 4)), isCpu(b) ? 1e-10 : 1e-5, 0, `${b.kind} exact`);
      expectRelClose(fast, exact, 1e-4, 0, `${b.kind} randomized`);
      expect(Array.from(byDefault)).toEqual(Array.from(exact));
      z.dispose();
    }
  });
});

// ---- errors --------------------------------------------------------------------------------------

describe("bad input", () => {
  it("throws ShapeError / ArgumentError naming the op and the shape", async () => {
    const gpu = await getGpu();
    const cube = T.zeros([2, 3, 4], { backend: gpu });
    const m = T.zeros([4, 6], { backend: gpu });
    expect(() => qr(cube)).toThrow(T.ShapeError);
    expect(() => qr(cube)).toThrow("qr: expected a 2-D matrix, got shape [2,3,4]");
    expect(() => svd(cube)).toThrow("svd: expected a 2-D matrix, got shape [2,3,4]");
    expect(() => svdvals(T.zeros([5], { backend: gpu }), 1)).toThrow("svdvals: expected a 2-D matrix, got shape [5]");
    expect(() => svd(T.zeros([0, 3], { backend: gpu }))).toThrow("svd: expected a non-empty matrix, got shape [0,3]");
    expect(() => eigh(m)).toThrow(T.ShapeError);
    expect(() => eigh(m)).toThrow("eigh: expected a square (symmetric) matrix, got shape [4,6]");
    expect(() => svdvals(m, 5)).toThrow(T.ArgumentError);
    expect(() => svdvals(m, 5)).toThrow("svdvals: k must be an integer in [1, 4] for a matrix of shape [4,6], got 5");
    expect(() => svdvals(m, 0)).toThrow(T.ArgumentError);
    expect(() => svdvals(m, 2, { method: "lanczos" as "exact" })).toThrow(/svdvals: method must be "exact" or "randomized"/);
    expect(() => svdLowRank(m, 7)).toThrow("svdLowRank: q must be an integer in [1, 4] for a matrix of shape [4,6], got 7");
    expect(() => svdLowRank(m, 2, { niter: -1 })).toThrow(T.ArgumentError);
    expect(() => svd(m, { maxSweeps: 0 })).toThrow("svd: maxSweeps must be a positive integer, got 0");
    expect(() => svd(T.zeros([3, 3], { backend: gpu, dtype: "i32" }))).toThrow(T.DTypeError);
    dispose(cube, m);
  });
});

// ---- memory --------------------------------------------------------------------------------------

describe("memory", () => {
  it("frees every intermediate: bytesInUse returns to its start after results are disposed", async () => {
    for (const b of await both()) {
      const a = upload(randomValues(23, 11, 1), [23, 11], b);
      const sym = upload(
        randomValues(9, 9, 2).map((_, e, v) => v[e] + v[(e % 9) * 9 + Math.floor(e / 9)]),
        [9, 9],
        b,
      );
      const z = upload(randomValues(6, 30, 3), [6, 30], b);
      z.requiresGrad = true;
      const start = b.memory().bytesInUse;
      const { q, r } = qr(a);
      dispose(q, r);
      const d = svd(a);
      dispose(d.u, d.s, d.v);
      const wide = T.transpose(a);
      const w = svd(wide);
      dispose(w.u, w.s, w.v, wide);
      const e = eigh(sym);
      dispose(e.values, e.vectors);
      const l = svdLowRank(a, 4);
      dispose(l.u, l.s, l.v);
      T.noGrad(() => svdvals(z, 3)).dispose();
      T.noGrad(() => svdvals(z, 2, { method: "randomized" })).dispose();
      // With a graph exactly three storages stay alive: the output and U_k, V_k saved for backward
      // (tidy frees them; the leaf keeps its grad, freed below).
      for (const method of ["exact", "randomized"] as const)
        T.tidy(() => {
          const live = b.memory().storages;
          const y = svdvals(z, 3, { method });
          expect(b.memory().storages - live, `${b.kind} ${method}: storages alive after svdvals`).toBe(3);
          T.backward(T.sum(y));
        });
      expect(z.grad).toBeTruthy();
      z.grad!.dispose();
      z.grad = null;
      if (!isCpu(b)) await b.sync();
      expect(b.memory().bytesInUse, `${b.kind} bytesInUse`).toBe(start);
      dispose(a, sym, z);
    }
  });
});
