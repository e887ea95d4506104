// Householder QR (thin), for the orthonormal bases of svdLowRank and the m ≫ n step of svd. It works
// on Aᵀ row-major so every reflected column is contiguous: one GPU dispatch per reflection.
import { emptyTensor, type Tensor } from "../tensor.js";
import { noGrad } from "../graph.js";
import { cpuData, groups, isGpu, LINEAR_WG, MAIN, outputDecl, paramsDecl, rowWorkgroup, wgReduceLib } from "../ops/kernel.js";
import { eyeMatrix, matrixDims, workingCopy } from "./common.js";

/**
 * Thin QR of an m×n matrix by Householder reflections: A = Q·R with Q m×k (orthonormal columns) and
 * R k×n upper triangular (upper trapezoidal when m < n), k = min(m, n). The diagonal of R may be
 * negative (as in LAPACK and torch). f32 results on the input's backend, no autograd.
 */
export function qr(a: Tensor): { q: Tensor; r: Tensor } {
  matrixDims("qr", a);
  return noGrad(() => householderQr(a));
}

/**
 * qr() without the argument checks, for callers inside linalg. Step j reflects column j onto
 * α_j·e_j with v = x − α_j·e_j, α_j = −sign(x_j)·‖x‖ (no cancellation), H_j = I − 2vvᵀ/‖v‖². Each
 * workgroup of a step owns one column c ≥ j and recomputes ‖x‖ and v·y itself from column j, which
 * nobody writes during the step, so a step is a single dispatch. Q = H_0···H_{k−1}·[I; 0] is then
 * formed backwards, again one dispatch per reflection.
 */
export function householderQr(a: Tensor): { q: Tensor; r: Tensor } {
  const [m, n] = a.shape;
  const k = Math.min(m, n);
  const b = a.backend;
  const cols = workingCopy(a, true); // n×m: row c is column c of A
  const reflectors = emptyTensor(b, [k, m]); // row j: v_j in entries j..m−1
  const scalars = emptyTensor(b, [2 * k]); // [α_0..α_{k−1}, ‖v_0‖²..‖v_{k−1}‖²]
  for (let j = 0; j < k; j++) reflectStep(cols, reflectors, scalars, j, k);
  const qRows = eyeMatrix(b, k, m); // rows of Qᵀ
  for (let j = k - 1; j >= 0; j--) applyReflector(qRows, reflectors, scalars, j, k);
  const r = upperFactor(cols, scalars, k);
  const q = workingCopy(qRows, true);
  for (const t of [cols, reflectors, scalars, qRows]) t.dispose();
  return { q, r };
}

/** Reflection j: builds v_j from column j (stored by that column's workgroup) and reflects columns c > j. */
function reflectStep(cols: Tensor, reflectors: Tensor, scalars: Tensor, j: number, k: number): void {
  const [n, m] = cols.shape;
  const b = cols.backend;
  if (isGpu(b)) {
    const wg = rowWorkgroup(m);
    const params = { u: { m, n, j, k } };
    b.dispatch({
      key: `householder_step:${wg}`,
      params,
      inputs: [],
      outputs: [cols.storage, reflectors.storage, scalars.storage],
      grid: n - j,
      flops: (n - j) * (m - j) * 6,
      wgsl: () => `${paramsDecl(params)}${outputDecl(1, "g")}${outputDecl(2, "hv")}${outputDecl(3, "sc")}
${wgReduceLib(wg, "vec2<f32>")}
${MAIN(wg)} {
  let c = p.j + ${LINEAR_WG};
  if (c >= p.n) { return; }
  let xb = p.j * p.m;
  let yb = c * p.m;
  // Read before the barrier: after it, this workgroup's threads start writing row c.
  let x0 = g[xb + p.j];
  let yj = g[yb + p.j];
  var acc = vec2<f32>(0.0);
  for (var i = p.j + lid.x; i < p.m; i += ${wg}u) { let x = g[xb + i]; acc += vec2<f32>(x * x, x * g[yb + i]); }
  let d = wg_sum(acc, lid.x);
  let sigma = sqrt(d.x);
  let alpha = select(-sigma, sigma, x0 < 0.0);
  let v0 = x0 - alpha;
  let vn2 = 2.0 * sigma * (sigma + abs(x0));
  if (c == p.j) {
    for (var i = p.j + lid.x; i < p.m; i += ${wg}u) { hv[p.j * p.m + i] = select(g[xb + i], v0, i == p.j); }
    if (lid.x == 0u) { sc[p.j] = alpha; sc[p.k + p.j] = vn2; }
    return;
  }
  if (vn2 == 0.0) { return; }
  let f = 2.0 * (d.y - alpha * yj) / vn2;
  for (var i = p.j + lid.x; i < p.m; i += ${wg}u) { g[yb + i] -= f * select(g[xb + i], v0, i == p.j); }
}`,
    });
    return;
  }
  const [g, hv, sc] = [cpuData(cols), cpuData(reflectors), cpuData(scalars)];
  const xb = j * m;
  let sigma = 0;
  for (let i = j; i < m; i++) sigma += g[xb + i] ** 2;
  sigma = Math.sqrt(sigma);
  const x0 = g[xb + j];
  const alpha = x0 < 0 ? sigma : -sigma;
  const vn2 = 2 * sigma * (sigma + Math.abs(x0));
  for (let i = j; i < m; i++) hv[j * m + i] = i === j ? x0 - alpha : g[xb + i];
  sc[j] = alpha;
  sc[k + j] = vn2;
  if (vn2 === 0) return;
  for (let c = j + 1; c < n; c++) {
    const yb = c * m;
    let vy = 0;
    for (let i = j; i < m; i++) vy += hv[j * m + i] * g[yb + i];
    const f = (2 * vy) / vn2;
    for (let i = j; i < m; i++) g[yb + i] -= f * hv[j * m + i];
  }
}

/** Applies H_j to rows c ≥ j of Qᵀ (rows c < j are still e_c, which H_j leaves alone). */
function applyReflector(qRows: Tensor, reflectors: Tensor, scalars: Tensor, j: number, k: number): void {
  const m = qRows.shape[1];
  const b = qRows.backend;
  if (isGpu(b)) {
    const wg = rowWorkgroup(m);
    const params = { u: { m, j, k } };
    b.dispatch({
      key: `householder_apply_q:${wg}`,
      params,
      inputs: [reflectors.storage, scalars.storage],
      outputs: [qRows.storage],
      grid: k - j,
      flops: (k - j) * (m - j) * 4,
      wgsl: () => `${paramsDecl(params)}@group(0) @binding(1) var<storage, read> hv: array<f32>;
@group(0) @binding(2) var<storage, read> sc: array<f32>;
${outputDecl(3, "q")}
${wgReduceLib(wg, "f32")}
${MAIN(wg)} {
  let c = p.j + ${LINEAR_WG};
  if (c >= p.k) { return; }
  let vb = p.j * p.m;
  let qb = c * p.m;
  var acc = 0.0;
  for (var i = p.j + lid.x; i < p.m; i += ${wg}u) { acc += hv[vb + i] * q[qb + i]; }
  let total = wg_sum(acc, lid.x);
  let vn2 = sc[p.k + p.j];
  if (vn2 == 0.0) { return; }
  let f = 2.0 * total / vn2;
  for (var i = p.j + lid.x; i < p.m; i += ${wg}u) { q[qb + i] -= f * hv[vb + i]; }
}`,
    });
    return;
  }
  const [q, hv, sc] = [cpuData(qRows), cpuData(reflectors), cpuData(scalars)];
  const vn2 = sc[k + j];
  if (vn2 === 0) return;
  for (let c = j; c < k; c++) {
    let dot = 0;
    for (let i = j; i < m; i++) dot += hv[j * m + i] * q[c * m + i];
    const f = (2 * dot) / vn2;
    for (let i = j; i < m; i++) q[c * m + i] -= f * hv[j * m + i];
  }
}

/** R (k×n): α_i on the diagonal, reflected column c's entry i above it (row c, position i, of `cols`). */
function upperFactor(cols: Tensor, scalars: Tensor, k: number): Tensor {
  const [n, m] = cols.shape;
  const b = cols.backend;
  const r = emptyTensor(b, [k, n]);
  if (isGpu(b)) {
    const wg = 256;
    const params = { u: { m, n, total: k * n } };
    b.dispatch({
      key: "householder_r",
      params,
      inputs: [cols.storage, scalars.storage],
      outputs: [r.storage],
      grid: groups(k * n, wg),
      wgsl: () => `${paramsDecl(params)}@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> sc: array<f32>;
${outputDecl(3, "r")}
${MAIN(wg)} {
  let e = ${LINEAR_WG} * ${wg}u + lid.x;
  if (e >= p.total) { return; }
  let i = e / p.n;
  let c = e % p.n;
  var v = 0.0;
  if (c > i) { v = g[c * p.m + i]; } else if (c == i) { v = sc[i]; }
  r[e] = v;
}`,
    });
    return r;
  }
  const [g, sc, rd] = [cpuData(cols), cpuData(scalars), cpuData(r)];
  for (let i = 0; i < k; i++) {
    rd[i * n + i] = sc[i];
    for (let c = i + 1; c < n; c++) rd[i * n + c] = g[c * m + i];
  }
  return r;
}
