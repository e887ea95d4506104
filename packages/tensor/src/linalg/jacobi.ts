// Parallel one-sided (Hestenes) Jacobi, the engine under svd and eigh: it rotates pairs of rows of a
// k×L matrix until they are orthogonal, k/2 disjoint pairs per round, one GPU dispatch per round.
import { emptyTensor, type Tensor } from "../tensor.js";
import { fill } from "../ops/copy.js";
import { cpuData, groups, inputDecl, isGpu, LINEAR_WG, MAIN, outputDecl, paramsDecl, rowWorkgroup, wgReduceLib } from "../ops/kernel.js";
import { eyeMatrix, machineEps } from "./common.js";

/**
 * Sweeps encoded by default. Measured in f32 on random matrices: 5-7 sweeps for k ≤ 64, 10 for 128,
 * 12 for 256 (one of them the final sweep without rotations); the count grows roughly like log k, so
 * 20 leaves margin at 4096. Sweeps after convergence cost one no-op dispatch per round.
 */
export const DEFAULT_MAX_SWEEPS = 20;

export interface JacobiResult {
  /** Singular values of X, descending. */
  s: Tensor;
  /** L×k: the rotated rows, normalised, as columns (X's left singular vectors); null unless asked for. */
  u: Tensor | null;
  /** k×k: the accumulated rotations as columns (X's right singular vectors). */
  v: Tensor;
}

/**
 * Tolerances. A pair is rotated while |γ| > tol·√(αβ), tol = 2·√L·eps: above the rounding error of
 * a length-L dot product, and what bounds |u_iᵀu_j| at the end. A row whose squared norm is below
 * zeroRel2·‖X‖²_F, zeroRel2 = (8·√k·eps)², counts as zero (rank deficiency: such rows would
 * otherwise rotate noise against noise until maxSweeps).
 */
function tolerances(b: Tensor["backend"], k: number, L: number): { tol: number; zeroRel2: number } {
  const eps = machineEps(b);
  return { tol: 2 * Math.sqrt(L) * eps, zeroRel2: (8 * Math.sqrt(k) * eps) ** 2 };
}

/** Device state words: [converged flag, max |γ|/√(αβ) this sweep (f32 bits), sweeps run, ‖X‖²_F (f32 bits)]. */
const STATE_WORDS = 4;

/** Pair i of round r in the circle method over K players (player K − 1 stays, the others rotate). */
function pairOf(K: number, r: number, i: number): [number, number] {
  const M = K - 1;
  return i === 0 ? [M, r] : [(r + i) % M, (r + M - i) % M];
}

/**
 * SVD of X = rowsᵀ by one-sided Jacobi. `rows` (k×L, contiguous at offset 0, owned by the caller)
 * is rotated in place. Results are sorted by descending singular value; signs are not normalised.
 *
 * Rows, not columns: callers pass Xᵀ row-major (X = L×k), so every column of X is contiguous.
 * Schedule: the round-robin "circle method" over K = k rounded up to even players; K − 1 rounds
 * make a sweep in which every pair meets once (a player paired with the dummy k sits out).
 * Convergence without readback: each rotation records |γ|/√(αβ) in a device-side state word; after
 * a sweep in which no pair needed rotating, a flag makes every later round kernel return at once.
 * So the host encodes `maxSweeps` sweeps up front (no-ops once converged), the API stays
 * synchronous, and the decomposition never waits on a readback. The CPU oracle breaks out early.
 */
export function jacobiSvdOfRows(rows: Tensor, opts: { wantU: boolean; maxSweeps: number }): JacobiResult {
  const [k, L] = rows.shape;
  const b = rows.backend;
  const { tol, zeroRel2 } = tolerances(b, k, L);
  const rotations = eyeMatrix(b, k, k);
  const state = fill(b, [STATE_WORDS], 0);
  const norms0 = rowSumSquares(rows);
  initState(state, norms0);
  norms0.dispose();
  const K = k + (k % 2);
  for (let sweep = 0; sweep < opts.maxSweeps; sweep++) {
    for (let r = 0; r < K - 1; r++) rotateRound(rows, rotations, state, K, r, tol, zeroRel2);
    endSweep(state);
    if (!isGpu(b) && cpuData(state)[0] !== 0) break;
  }
  const norms = rowSumSquares(rows);
  const { s, order } = sortDescending(norms);
  const u = opts.wantU ? gatherColumns(rows, order, s, state, zeroRel2) : null;
  const v = gatherColumns(rotations, order, null, state, zeroRel2);
  for (const t of [norms, order, state, rotations]) t.dispose();
  return { s, u, v };
}

/** Σ_j x[i, j]² per row of a contiguous k×L matrix. */
function rowSumSquares(x: Tensor): Tensor {
  const [k, L] = x.shape;
  const out = emptyTensor(x.backend, [k]);
  const b = x.backend;
  if (isGpu(b)) {
    const wg = rowWorkgroup(L);
    const params = { u: { k, L } };
    b.dispatch({
      key: `jacobi_row_sumsq:${wg}`,
      params,
      inputs: [x.storage],
      outputs: [out.storage],
      grid: k,
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", "f32")}${outputDecl(2, "out")}${wgReduceLib(wg)}
${MAIN(wg)} {
  let i = ${LINEAR_WG};
  if (i >= p.k) { return; }
  var acc = 0.0;
  for (var j = lid.x; j < p.L; j += ${wg}u) { let v = x[i * p.L + j]; acc += v * v; }
  let s = wg_sum(acc, lid.x);
  if (lid.x == 0u) { out[i] = s; }
}`,
    });
  } else {
    const xd = cpuData(x);
    const o = cpuData(out);
    for (let i = 0; i < k; i++) {
      let acc = 0;
      for (let j = 0; j < L; j++) acc += xd[i * L + j] ** 2;
      o[i] = acc;
    }
  }
  return out;
}

/** Clears the state and stores ‖X‖²_F = Σ row norms². */
function initState(state: Tensor, rowNorms2: Tensor): void {
  const b = state.backend;
  const k = rowNorms2.size;
  if (isGpu(b)) {
    const wg = 256;
    const params = { u: { k } };
    b.dispatch({
      key: "jacobi_init",
      params,
      inputs: [rowNorms2.storage],
      outputs: [state.storage],
      grid: 1,
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "n2", "f32")}@group(0) @binding(2) var<storage, read_write> st: array<u32>;
${wgReduceLib(wg)}
${MAIN(wg)} {
  var acc = 0.0;
  for (var i = lid.x; i < p.k; i += ${wg}u) { acc += n2[i]; }
  let fro2 = wg_sum(acc, lid.x);
  if (lid.x == 0u) { st[0] = 0u; st[1] = 0u; st[2] = 0u; st[3] = bitcast<u32>(fro2); }
}`,
    });
  } else {
    const st = cpuData(state);
    st.fill(0);
    st[3] = cpuData(rowNorms2).reduce((a, v) => a + v, 0);
  }
}

/** Rows per thread kept in registers between the dot products and the rotation (0: read twice). */
const cachedPerThread = (L: number, wg: number): number => {
  const need = Math.ceil(L / wg);
  return need > 16 ? 0 : 2 ** Math.ceil(Math.log2(need));
};

/**
 * One round: for each of its K/2 pairs (a, b), α = ‖x_a‖², β = ‖x_b‖², γ = x_a·x_b; if the pair is
 * not yet orthogonal, the rotation with ζ = (β − α)/2γ, t = sign(ζ)/(|ζ| + √(1 + ζ²)), c = 1/√(1 + t²),
 * s = c·t zeroes γ; it is applied to rows a, b of X and of the accumulated rotations V in
 * Rutishauser's form x' = x − s·(y + τx), y' = y + s·(x − τy), τ = s/(1 + c): for the small angles of
 * late sweeps it adds a small correction instead of rescaling by a rounded c, so V stays orthogonal.
 */
function rotateRound(x: Tensor, v: Tensor, state: Tensor, K: number, r: number, tol: number, zeroRel2: number): void {
  const [k, L] = x.shape;
  const b = x.backend;
  if (isGpu(b)) {
    const wg = rowWorkgroup(L);
    const ch = cachedPerThread(L, wg);
    const params = { u: { k, L, K, r }, f: { tol, zeroRel2 } };
    const load = ch
      ? `var xs: array<f32, ${ch}>;
  var ys: array<f32, ${ch}>;
  for (var t = 0u; t < ${ch}u; t++) {
    let j = lid.x + t * ${wg}u;
    if (j < p.L) { let xa = x[ra + j]; let xb = x[rb + j]; xs[t] = xa; ys[t] = xb; acc += vec3<f32>(xa * xa, xb * xb, xa * xb); }
  }`
      : `for (var j = lid.x; j < p.L; j += ${wg}u) { let xa = x[ra + j]; let xb = x[rb + j]; acc += vec3<f32>(xa * xa, xb * xb, ` +
        `xa * xb); }`;
    const rotateX = ch
      ? `for (var t = 0u; t < ${ch}u; t++) {
    let j = lid.x + t * ${wg}u;
    if (j < p.L) { x[ra + j] = xs[t] - sn * (ys[t] + tau * xs[t]); x[rb + j] = ys[t] + sn * (xs[t] - tau * ys[t]); }
  }`
      : `for (var j = lid.x; j < p.L; j += ${wg}u) { let xa = x[ra + j]; let xb = x[rb + j]; x[ra + j] = xa - sn * (xb + tau * ` +
        `xa); x[rb + j] = xb + sn * (xa - tau * xb); }`;
    b.dispatch({
      key: `jacobi_round:${wg}:${ch}`,
      params,
      inputs: [],
      outputs: [x.storage, v.storage, state.storage],
      grid: K / 2,
      flops: (K / 2) * (12 * L + 6 * k),
      wgsl: () => `${paramsDecl(params)}${outputDecl(1, "x")}
${outputDecl(2, "v")}@group(0) @binding(3) var<storage, read_write> st: array<atomic<u32>>;
${wgReduceLib(wg, "vec3<f32>")}
var<workgroup> done: u32;
${MAIN(wg)} {
  if (lid.x == 0u) { done = atomicLoad(&st[0]); }
  if (workgroupUniformLoad(&done) != 0u) { return; }
  let i = ${LINEAR_WG};
  let M = p.K - 1u;
  var a = M;
  var bb = p.r;
  if (i > 0u) { a = (p.r + i) % M; bb = (p.r + M - i) % M; }
  if (i >= p.K / 2u || a >= p.k || bb >= p.k) { return; }
  let ra = a * p.L;
  let rb = bb * p.L;
  var acc = vec3<f32>(0.0);
  ${load}
  let d = wg_sum(acc, lid.x);
  let zero2 = p.zeroRel2 * bitcast<f32>(atomicLoad(&st[3]));
  if (d.x <= zero2 || d.y <= zero2) { return; }
  let off = abs(d.z) / (sqrt(d.x) * sqrt(d.y));
  if (off <= p.tol) { return; }
  if (lid.x == 0u) { atomicMax(&st[1], bitcast<u32>(off)); }
  let zeta = (d.y - d.x) / (2.0 * d.z);
  let tn = select(1.0, -1.0, zeta < 0.0) / (abs(zeta) + sqrt(1.0 + zeta * zeta));
  let cs = 1.0 / sqrt(1.0 + tn * tn);
  let sn = cs * tn;
  let tau = sn / (1.0 + cs);
  ${rotateX}
  let va = a * p.k;
  let vb = bb * p.k;
  for (var j = lid.x; j < p.k; j += ${wg}u) { let ya = v[va + j]; let yb = v[vb + j]; v[va + j] = ya - sn * (yb + tau * ya);
  v[vb + j] = yb + sn * (ya - tau * yb); }
}`,
    });
    return;
  }
  const st = cpuData(state);
  if (st[0] !== 0) return;
  const xd = cpuData(x);
  const vd = cpuData(v);
  const zero2 = zeroRel2 * st[3];
  const rotate = (d: Float64Array, len: number, ra: number, rb: number, sn: number, tau: number) => {
    for (let j = 0; j < len; j++) {
      const [ya, yb] = [d[ra + j], d[rb + j]];
      d[ra + j] = ya - sn * (yb + tau * ya);
      d[rb + j] = yb + sn * (ya - tau * yb);
    }
  };
  for (let i = 0; i < K / 2; i++) {
    const [a, bb] = pairOf(K, r, i);
    if (a >= k || bb >= k) continue;
    const [ra, rb] = [a * L, bb * L];
    let [al, be, ga] = [0, 0, 0];
    for (let j = 0; j < L; j++) {
      const [xa, xb] = [xd[ra + j], xd[rb + j]];
      al += xa * xa;
      be += xb * xb;
      ga += xa * xb;
    }
    if (al <= zero2 || be <= zero2) continue;
    const off = Math.abs(ga) / (Math.sqrt(al) * Math.sqrt(be));
    if (off <= tol) continue;
    st[1] = Math.max(st[1], off);
    const zeta = (be - al) / (2 * ga);
    const tn = (zeta < 0 ? -1 : 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
    const cs = 1 / Math.sqrt(1 + tn * tn);
    const sn = cs * tn;
    rotate(xd, L, ra, rb, sn, sn / (1 + cs));
    rotate(vd, k, a * k, bb * k, sn, sn / (1 + cs));
  }
}

/** Ends a sweep: counts it, and sets the converged flag if no pair needed a rotation. */
function endSweep(state: Tensor): void {
  const b = state.backend;
  if (isGpu(b)) {
    b.dispatch({
      key: "jacobi_end_sweep",
      inputs: [],
      outputs: [state.storage],
      grid: 1,
      wgsl: () => `${paramsDecl(undefined)}@group(0) @binding(1) var<storage, read_write> st: array<u32>;
${MAIN(1)} {
  if (st[0] == 0u) {
    st[2] += 1u;
    if (st[1] == 0u) { st[0] = 1u; }
    st[1] = 0u;
  }
}`,
    });
    return;
  }
  const st = cpuData(state);
  if (st[0] !== 0) return;
  st[2]++;
  if (st[1] === 0) st[0] = 1;
  st[1] = 0;
}

/**
 * Ranks rows by squared norm, largest first (ties: lower index first): s[rank] = √norm2[i] and
 * order[rank] = i (i32).
 */
function sortDescending(norms2: Tensor): { s: Tensor; order: Tensor } {
  const k = norms2.size;
  const b = norms2.backend;
  const s = emptyTensor(b, [k]);
  const order = emptyTensor(b, [k], "i32");
  if (isGpu(b)) {
    const wg = 64;
    const params = { u: { k } };
    b.dispatch({
      key: "jacobi_sort",
      params,
      inputs: [norms2.storage],
      outputs: [s.storage, order.storage],
      grid: groups(k, wg),
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "n2", "f32")}${outputDecl(2, "s")}${outputDecl(3, "order", "i32")}
${MAIN(wg)} {
  let i = ${LINEAR_WG} * ${wg}u + lid.x;
  if (i >= p.k) { return; }
  let v = n2[i];
  var rank = 0u;
  for (var j = 0u; j < p.k; j++) { let w = n2[j]; if (w > v || (w == v && j < i)) { rank++; } }
  s[rank] = sqrt(v);
  order[rank] = i32(i);
}`,
    });
  } else {
    const nd = cpuData(norms2);
    const idx = Array.from({ length: k }, (_, i) => i).sort((x, y) => nd[y] - nd[x] || x - y);
    idx.forEach((i, rank) => {
      cpuData(s)[rank] = Math.sqrt(nd[i]);
      cpuData(order)[rank] = i;
    });
  }
  return { s, order };
}

/**
 * out[r, c] = src[order[c], r] (rows of `src` become columns, in sorted order), divided by s[c]
 * when `s` is given; columns whose singular value counts as zero become zero vectors.
 */
function gatherColumns(src: Tensor, order: Tensor, s: Tensor | null, state: Tensor, zeroRel2: number): Tensor {
  const [k, len] = src.shape;
  const b = src.backend;
  const out = emptyTensor(b, [len, k]);
  if (isGpu(b)) {
    const wg = 256;
    const params = { u: { k, len, n: k * len, normalize: s ? 1 : 0 }, f: { zeroRel2 } };
    b.dispatch({
      key: "jacobi_gather_columns",
      params,
      inputs: [src.storage, order.storage, (s ?? order).storage, state.storage],
      outputs: [out.storage],
      grid: groups(k * len, wg),
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "src", "f32")}${inputDecl(2, "order", "i32")}
${inputDecl(3, "s", "f32")}@group(0) @binding(4) var<storage, read> st: array<u32>;
${outputDecl(5, "out")}
${MAIN(wg)} {
  let e = ${LINEAR_WG} * ${wg}u + lid.x;
  if (e >= p.n) { return; }
  let r = e / p.k;
  let c = e % p.k;
  var val = src[u32(order[c]) * p.len + r];
  if (p.normalize != 0u) {
    let sv = s[c];
    val = select(0.0, val / sv, sv * sv > p.zeroRel2 * bitcast<f32>(st[3]));
  }
  out[e] = val;
}`,
    });
    return out;
  }
  const [sd, od, o, sv] = [cpuData(src), cpuData(order), cpuData(out), s ? cpuData(s) : null];
  const zero2 = zeroRel2 * cpuData(state)[3];
  for (let r = 0; r < len; r++)
    for (let c = 0; c < k; c++) {
      const val = sd[od[c] * len + r];
      o[r * k + c] = sv ? (sv[c] * sv[c] > zero2 ? val / sv[c] : 0) : val;
    }
  return out;
}
