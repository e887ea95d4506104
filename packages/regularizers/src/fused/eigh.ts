// Eigenpairs of the SVD term's small PSD Gram matrix (n ≤ a few thousand) in one dispatch: one
// workgroup runs every sweep of one-sided Jacobi with barriers between rounds, instead of a dispatch per round.
import { ArgumentError, type Tensor } from "@balora/tensor";
import { cpuData, cpuValues, emptyTensor, type GpuBackend, isGpu, MAIN, outputDecl, paramsDecl } from "@balora/tensor/kernel";

const WG = 256;
const MAX_SWEEPS = 30;

export interface Eigenpairs {
  /** n eigenvalues, descending. */
  values: Tensor;
  /** [n, n], eigenvector i in column i. */
  vectors: Tensor;
}

/**
 * Eigendecomposition of a symmetric positive semidefinite n×n matrix (a Gram matrix), no autograd.
 * WebGPU: Hestenes one-sided Jacobi on the rows (rows p, q rotate until orthogonal; then row norms
 * are the eigenvalues and the accumulated rotations the eigenvectors), all sweeps in one workgroup,
 * stopping when no pair is above tolerance. CPU oracle: the classical two-sided cyclic Jacobi
 * eigenvalue algorithm in float64, the textbook form.
 */
export function gramEigh(g: Tensor): Eigenpairs {
  if (g.rank !== 2 || g.shape[0] !== g.shape[1]) throw new ArgumentError(`gramEigh: expected a square matrix, got [${g.shape.join(", ")}]`);
  const n = g.shape[0];
  const values = emptyTensor(g.backend, [n]);
  const vectors = emptyTensor(g.backend, [n, n]);
  if (n === 0) return { values, vectors };
  const b = g.backend;
  if (isGpu(b) && b.traits.software && b.traits.subgroupSize) subgroupEigh(b, g, n, values, vectors, b.traits.subgroupSize);
  else if (isGpu(b)) gpuEigh(b, g, n, values, vectors);
  else cpuEigh(cpuValues(g), n, cpuData(values), cpuData(vectors));
  return { values, vectors };
}

function gpuEigh(b: GpuBackend, g: Tensor, n: number, values: Tensor, vectors: Tensor): void {
  const m = n + (n % 2); // even: an odd n gets a zero row that pairs like any other
  const work = emptyTensor(b, [2 * m * m + m]); // A (m×m rows), R (m×m rows), then the row norms²
  // The engine's Jacobi tolerances: rotate while |γ| > 2·√m·eps·√(αβ); rows below (8·√m·eps)²·‖A‖²_F count as zero.
  const eps = 2 ** -23;
  const params = {
    u: { n, m, go: g.offset, gs0: g.strides[0], gs1: g.strides[1], sweeps: MAX_SWEEPS },
    f: { tol: 2 * Math.sqrt(m) * eps, zero: (8 * Math.sqrt(m) * eps) ** 2 },
  };
  b.dispatch({
    key: `reg_gram_eigh:${WG}`,
    params,
    inputs: [g.storage],
    outputs: [work.storage, values.storage, vectors.storage],
    grid: 1,
    wgsl: () => `${paramsDecl(params)}@group(0) @binding(1) var<storage, read> g: array<f32>;
${outputDecl(2, "w")}${outputDecl(3, "vals")}${outputDecl(4, "vecs")}
var<workgroup> red: array<f32, ${WG}>;
var<workgroup> busy: u32;
var<workgroup> fro2: f32;
${MAIN(WG)} {
  let m = p.m;
  let rb = m * m;
  // A = G (zero-padded), R = I
  for (var i = lid.x; i < m * m; i += ${WG}u) {
    let r = i / m; let c = i % m;
    w[i] = select(0.0, g[p.go + r * p.gs0 + c * p.gs1], r < p.n && c < p.n);
    w[rb + i] = select(0.0, 1.0, r == c);
  }
  var part = 0.0;
  for (var i = lid.x; i < p.n * p.n; i += ${WG}u) { let x = g[p.go + (i / p.n) * p.gs0 + (i % p.n) * p.gs1]; part += x * x; }
  red[lid.x] = part;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { red[lid.x] += red[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { fro2 = red[0]; }
  let zero2 = workgroupUniformLoad(&fro2) * p.zero;
  storageBarrier();
  for (var sweep = 0u; sweep < p.sweeps; sweep++) {
    var worst = 0.0;
    for (var round = 0u; round < m - 1u; round++) {
      // circle method: position 0 fixed, the others rotate; pair i is (f(i), f(m − 1 − i)) with f(0) = 0
      for (var i = lid.x; i < m / 2u; i += ${WG}u) {
        var a = 0u;
        if (i != 0u) { a = ((i - 1u + round) % (m - 1u)) + 1u; }
        let b2 = ((m - 2u - i + round) % (m - 1u)) + 1u;
        let pr = min(a, b2) * m; let qr = max(a, b2) * m;
        var al = 0.0; var be = 0.0; var ga = 0.0;
        for (var k = 0u; k < m; k++) { let x = w[pr + k]; let y = w[qr + k]; al += x * x; be += y * y; ga += x * y; }
        let scale = sqrt(al * be);
        if (al > zero2 && be > zero2 && abs(ga) > p.tol * scale) {
          worst = max(worst, abs(ga) / scale);
          let zeta = (be - al) / (2.0 * ga);
          let t = select(-1.0, 1.0, zeta >= 0.0) / (abs(zeta) + sqrt(1.0 + zeta * zeta));
          let c = 1.0 / sqrt(1.0 + t * t);
          let s = c * t;
          for (var k = 0u; k < m; k++) {
            let x = w[pr + k]; let y = w[qr + k];
            w[pr + k] = c * x - s * y; w[qr + k] = s * x + c * y;
            let u = w[rb + pr + k]; let v = w[rb + qr + k];
            w[rb + pr + k] = c * u - s * v; w[rb + qr + k] = s * u + c * v;
          }
        }
      }
      storageBarrier();
    }
    red[lid.x] = worst;
    workgroupBarrier();
    for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
      if (lid.x < s) { red[lid.x] = max(red[lid.x], red[lid.x + s]); }
      workgroupBarrier();
    }
    if (lid.x == 0u) { busy = select(0u, 1u, red[0] > 0.0); }
    let again = workgroupUniformLoad(&busy);
    if (again == 0u) { break; }
  }
  // λ_i = ‖row i of A‖; sort descending (ties by index) and scatter: vals[rank] and column rank of vecs.
  let nb = 2u * rb;
  for (var i = lid.x; i < p.n; i += ${WG}u) {
    var li = 0.0;
    for (var k = 0u; k < m; k++) { let x = w[i * m + k]; li += x * x; }
    w[nb + i] = li;
  }
  storageBarrier();
  for (var i = lid.x; i < p.n; i += ${WG}u) {
    let li = w[nb + i];
    var rank = 0u;
    for (var j = 0u; j < p.n; j++) { let lj = w[nb + j]; if (lj > li || (lj == li && j < i)) { rank++; } }
    vals[rank] = sqrt(li);
    for (var k = 0u; k < p.n; k++) { vecs[k * p.n + rank] = w[rb + i * m + k]; }
  }
}`,
  });
  work.dispose();
}

/**
 * The same sweeps for CPU adapters (lavapipe) with a fixed subgroup size SG: one workgroup of one
 * subgroup; pairs run one after another, and lane l owns elements k ≡ l (mod SG) of every row, so
 * loads are contiguous across lanes, dot products are subgroupAdd, and no lane ever reads what
 * another wrote until the final sort (per-lane gathers are what make the 256-lane form slow there).
 */
function subgroupEigh(b: GpuBackend, g: Tensor, n: number, values: Tensor, vectors: Tensor, SG: number): void {
  // Rows padded to a multiple of 4·SG (zero rows never rotate) and read as vec4: a quarter of the gathers.
  const m = Math.ceil(n / (4 * SG)) * 4 * SG;
  const m4 = m / 4;
  const work = emptyTensor(b, [2 * m * m + m]);
  const eps = 2 ** -23;
  const params = {
    u: { n, m, m4, go: g.offset, gs0: g.strides[0], gs1: g.strides[1], sweeps: MAX_SWEEPS },
    f: { tol: 2 * Math.sqrt(m) * eps, zero: (8 * Math.sqrt(m) * eps) ** 2 },
  };
  b.dispatch({
    key: `reg_gram_eigh_sg:${SG}`,
    params,
    inputs: [g.storage],
    outputs: [work.storage, values.storage, vectors.storage],
    grid: 1,
    wgsl: () => `enable subgroups;
diagnostic(off, subgroup_uniformity);
${paramsDecl(params)}@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<vec4<f32>>;
${outputDecl(3, "vals")}${outputDecl(4, "vecs")}
fn gload(r: u32, c: u32) -> f32 { return select(0.0, g[p.go + r * p.gs0 + min(c, p.n - 1u) * p.gs1], r < p.n && c < p.n); }
@compute @workgroup_size(${SG}) fn main(@builtin(subgroup_invocation_id) l: u32) {
  let m = p.m;
  let m4 = p.m4;
  let rb = m * m4; // R starts after A (in vec4 units)
  var part = 0.0;
  for (var r = 0u; r < m; r++) {
    for (var c4 = l; c4 < m4; c4 += ${SG}u) {
      let c = 4u * c4;
      let x = vec4<f32>(gload(r, c), gload(r, c + 1u), gload(r, c + 2u), gload(r, c + 3u));
      w[r * m4 + c4] = x; part += dot(x, x);
      w[rb + r * m4 + c4] = select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<u32>(c, c + 1u, c + 2u, c + 3u) == vec4<u32>(r));
    }
  }
  let zero2 = subgroupAdd(part) * p.zero;
  for (var sweep = 0u; sweep < p.sweeps; sweep++) {
    var rotated = false;
    for (var round = 0u; round < m - 1u; round++) {
      for (var i = 0u; i < m / 2u; i++) {
        var a = 0u;
        if (i != 0u) { a = ((i - 1u + round) % (m - 1u)) + 1u; }
        let b2 = ((m - 2u - i + round) % (m - 1u)) + 1u;
        let pr = min(a, b2) * m4; let qr = max(a, b2) * m4;
        var al = 0.0; var be = 0.0; var ga = 0.0;
        for (var k = l; k < m4; k += ${SG}u) { let x = w[pr + k]; let y = w[qr + k]; al += dot(x, x); be += dot(y, y); ga += dot(x, y); }
        al = subgroupAdd(al); be = subgroupAdd(be); ga = subgroupAdd(ga);
        if (al > zero2 && be > zero2 && abs(ga) > p.tol * sqrt(al * be)) {
          rotated = true;
          let zeta = (be - al) / (2.0 * ga);
          let t = select(-1.0, 1.0, zeta >= 0.0) / (abs(zeta) + sqrt(1.0 + zeta * zeta));
          let c = 1.0 / sqrt(1.0 + t * t);
          let s = c * t;
          for (var k = l; k < m4; k += ${SG}u) {
            let x = w[pr + k]; let y = w[qr + k];
            w[pr + k] = c * x - s * y; w[qr + k] = s * x + c * y;
            let u = w[rb + pr + k]; let v = w[rb + qr + k];
            w[rb + pr + k] = c * u - s * v; w[rb + qr + k] = s * u + c * v;
          }
        }
      }
    }
    if (!rotated) { break; }
  }
  // Every lane stores every norm (the same subgroupAdd value) and scatters only its own elements:
  // no lane reads another's writes, so no barrier is needed. Norms live after R, one per vec4 slot.
  let nb = 2u * rb;
  for (var i = 0u; i < p.n; i++) {
    var li = 0.0;
    for (var k = l; k < m4; k += ${SG}u) { let x = w[i * m4 + k]; li += dot(x, x); }
    w[nb + i / 4u][i % 4u] = subgroupAdd(li);
  }
  for (var i = 0u; i < p.n; i++) {
    let li = w[nb + i / 4u][i % 4u];
    var rank = 0u;
    for (var j = 0u; j < p.n; j++) { let lj = w[nb + j / 4u][j % 4u]; if (lj > li || (lj == li && j < i)) { rank++; } }
    if (l == 0u) { vals[rank] = sqrt(li); }
    for (var k4 = l; k4 < m4; k4 += ${SG}u) {
      let v = w[rb + i * m4 + k4];
      for (var q = 0u; q < 4u; q++) { let k = 4u * k4 + q; if (k < p.n) { vecs[k * p.n + rank] = v[q]; } }
    }
  }
}`,
  });
  work.dispose();
}

/** Classical cyclic Jacobi: rotate away each off-diagonal (p, q) of the symmetric A until it is diagonal. */
function cpuEigh(g: Float64Array, n: number, values: Float64Array, vectors: Float64Array): void {
  const a = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => 0.5 * (g[i * n + j] + g[j * n + i])));
  const v = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => +(i === j)));
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    let total = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) (i === j ? (x: number) => (total += x * x) : (x: number) => (off += x * x))(a[i][j]);
    if (off <= 1e-30 * (total + off) || off === 0) break;
    for (let p = 0; p < n - 1; p++)
      for (let q = p + 1; q < n; q++) {
        if (a[p][q] === 0) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(1 + theta * theta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const [akp, akq] = [a[k][p], a[k][q]];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const [apk, aqk] = [a[p][k], a[q][k]];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const [vkp, vkq] = [v[k][p], v[k][q]];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => a[y][y] - a[x][x] || x - y);
  order.forEach((i, r) => {
    values[r] = Math.max(a[i][i], 0);
    for (let k = 0; k < n; k++) vectors[k * n + r] = v[k][i];
  });
}
