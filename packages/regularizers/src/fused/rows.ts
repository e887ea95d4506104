// The per-row pass under every token term: cross-entropy, temperature KL(teacher ‖ student) and the
// entropy (full or top-k renormalised) of one row of logits, with d(weighted sum)/d(logits) written in place.
import { ArgumentError, type Tensor } from "@balora/tensor";
import {
  bindSpan,
  cpuData,
  fitsBinding,
  cpuValues,
  type GpuBackend,
  inputDecl,
  isGpu,
  LINEAR_WG,
  MAIN,
  outputDecl,
  paramsDecl,
  reportWgsl,
  rowMaxSumExp,
  rowMaxSumExpWgsl,
  rowRuns,
  rowWorkgroup,
  wgReduceLib,
} from "@balora/tensor/kernel";

/** Which terms a pass computes, and how. */
export interface RowPass {
  ce: boolean;
  kl: boolean;
  ent: boolean;
  /** KL temperature τ (the KL compares softmax(z/τ)). */
  tau: number;
  /** Entropy over the top-k logits renormalised; 0 = the full vocabulary. */
  topK: number;
  /** Logits are c·tanh(z/c) of the stored rows when set (Gemma 2's final soft-cap). */
  softcap: number | null;
  /** Multiplies the (capped) logits before every term (1 except for the teacher-entropy pass, 1/τ). */
  scale: number;
  /** Write the gradient into `zs` (false: values only, `zs` is left as it is). */
  write: boolean;
}

/** Values written per row: [ce (0 where the target is ignored), KL·mask, entropy·mask]. */
export const ROW_VALUES = 3;

export interface RowArgs {
  /** Student logits [n, V] f32, contiguous; overwritten with the gradient when `write`. */
  zs: Tensor;
  /** Teacher logits [n, V] (any float dtype), needed when `kl`. */
  zt: Tensor | null;
  /** i32 [n] targets (−100 = ignored), needed when `ce`. */
  targets: Tensor | null;
  /** f32 [n] per-row weight of the KL and entropy (the supervision mask). */
  mask: Tensor;
  /** f32 [3] device weights: gradient = w0·∂ce + w1·mask·∂KL + w2·mask·∂H (per row). */
  weights: Tensor;
  /** f32 [N, 3] values; rows row0 … row0 + n − 1 are written. */
  vals: Tensor;
  row0: number;
}

const FLT_MAX = "3.4028234663852886e38";

/** Runs the pass over every row of `a.zs` on its backend (WGSL, or the float64 formulas on the CPU oracle). */
export function rowPass(o: RowPass, a: RowArgs): void {
  const [n, V] = a.zs.shape;
  if (a.zs.dtype !== "f32" || !a.zs.isContiguous) throw new ArgumentError("rowPass: student logits must be contiguous f32");
  if (o.kl && !a.zt) throw new ArgumentError("rowPass: the KL needs teacher logits");
  if (o.ce && !a.targets) throw new ArgumentError("rowPass: cross-entropy needs targets");
  if (n === 0) return;
  const b = a.zs.backend;
  if (isGpu(b)) gpuPass(b, o, a, n, V);
  else cpuPass(o, a, n, V);
}

function gpuPass(b: GpuBackend, o: RowPass, a: RowArgs, n: number, V: number): void {
  const wg = rowWorkgroup(V);
  const K = o.ent && o.topK > 0 && o.topK < V ? o.topK : 0;
  const cap = o.softcap !== null && o.softcap > 0;
  const zt = o.kl ? a.zt! : null;
  const { code, err } = b.validation(`regularizers: a target is out of range [0, ${V}) and not −100 (logits [${n}, ${V}])`);
  // Student and teacher rows may share one storage (the fused head's stacked chunk): then the teacher is
  // read through the student's read_write binding (one buffer cannot be bound writable and read-only at once).
  const shared = !!zt && zt.storage === a.zs.storage;
  if (shared && !fitsBinding(b, a.zs.storage)) throw new ArgumentError("rowPass: a shared student/teacher chunk must fit one binding");
  const storages = zt && !shared ? [a.zs.storage, zt.storage] : [a.zs.storage];
  for (const [r0, r1] of rowRuns(b, n, V * 4, storages)) {
    const zs = bindSpan(b, a.zs.storage, a.zs.offset + r0 * V, (r1 - r0) * V);
    const ts = zt && !shared ? bindSpan(b, zt.storage, zt.offset + r0 * V, (r1 - r0) * V) : null;
    const params = {
      u: {
        n: r1 - r0,
        V,
        zso: zs.base,
        zto: ts ? ts.base : shared ? zt!.offset + r0 * V : 0,
        to: a.targets ? a.targets.offset + r0 : 0,
        mo: a.mask.offset + r0,
        wo: a.weights.offset,
        vo: a.row0 + r0,
        code,
      },
      f: { invtau: 1 / o.tau, cap: o.softcap ?? 0, scale: o.scale },
    };
    const inputs = [...(ts ? [ts.binding] : []), ...(o.ce ? [a.targets!.storage] : []), a.mask.storage, a.weights.storage];
    let bi = 1;
    const decl = (name: string, dtype: "f32" | "i32" | "bf16" | "f16") => inputDecl(bi++, name, dtype);
    const inDecls = `${ts ? decl("zt", zt!.dtype) : ""}${o.ce ? decl("tg", "i32") : ""}${decl("mk", "f32")}${decl("w", "f32")}`;
    const zsDecl = `@group(0) @binding(${bi}) var<storage, read_write> zs: array<f32>;\n`;
    const outDecls = `${zsDecl}${outputDecl(bi + 1, "vals")}${reportWgsl(bi + 2)}`;
    const A = (j: string) => (cap ? `(p.cap * tanh(clamp(zs[rb + ${j}] / p.cap, -15.0, 15.0)) * p.scale)` : `(zs[rb + ${j}] * p.scale)`);
    const tload = (j: string) => (shared ? `zs[tb + ${j}]` : `load_zt(tb + ${j})`);
    const Tv = (j: string) => (cap ? `(p.cap * tanh(clamp(${tload(j)} / p.cap, -15.0, 15.0)))` : tload(j));
    const flags = `${+o.ce}${+o.kl}${+o.ent}${+o.write}`;
    b.dispatch({
      key: `reg_rows:${flags}:${K}${K && topKBySelection(b, K) ? "sel" : ""}:${wg}:${cap}:${shared ? "shared" : (zt?.dtype ?? "-")}`,
      params,
      inputs,
      outputs: [zs.binding, a.vals.storage, err],
      grid: r1 - r0,
      wgsl: () => `${paramsDecl(params)}${inDecls}${outDecls}${wgReduceLib(wg)}
${K ? `var<workgroup> pv: array<f32, ${wg}>;\nvar<workgroup> pix: array<u32, ${wg}>;` : ""}
${MAIN(wg)} {
  let r = ${LINEAR_WG};
  if (r >= p.n) { return; }
  let rb = p.zso + r * p.V;
  ${zt ? "let tb = p.zto + r * p.V;" : ""}
  let m = mk[p.mo + r];
  var m1 = 0.0; var s1 = 0.0;
  { ${rowMaxSumExpWgsl({ wg, cols: "p.V", value: A })} m1 = row_max; s1 = row_sum; }
  let lse1 = m1 + log(s1);
  var mt = 0.0; var st = 0.0;
  ${o.kl ? `{ ${rowMaxSumExpWgsl({ wg, cols: "p.V", value: (j) => `${Tv(j)} * p.invtau` })} mt = row_max; st = row_sum; }` : ""}
  ${
    o.ce
      ? `let y = tg[p.to + r];
  let yok = y >= 0 && u32(y) < p.V;
  if (y != -100 && !yok && lid.x == 0u) { report(p.code, y); }
  let ce = select(0.0, lse1 - ${A("u32(max(y, 0))")}, yok);`
      : ""
  }
  ${K ? (topKBySelection(b, K) ? topKSelectWgsl(K, wg, A) : topKWgsl(K, wg, A)) : ""}
  // One sweep for every other sum, relative to the maxima: Σe·a (entropy), top-k Σe and Σe·a, Σexp((a − m1)/τ), Σp_t·(t − a)/τ.
  var acc_pa = 0.0; var acc_ks = 0.0; var acc_ka = 0.0; var acc_ss = 0.0; var acc_kl = 0.0;
  for (var j = lid.x; j < p.V; j += ${wg}u) {
    let a = ${A("j")};
    ${o.ent ? "let e = exp(a - m1);" : ""}
    ${o.ent && !K ? "acc_pa += e * a;" : ""}
    ${K ? "if (a > kth_v || (a == kth_v && j <= kth_i)) { acc_ks += e; acc_ka += e * a; }" : ""}
    ${o.kl ? `acc_ss += exp((a - m1) * p.invtau); let t = ${Tv("j")} * p.invtau; acc_kl += exp(t - mt) * (t - a * p.invtau);` : ""}
  }
  ${o.ent && !K ? "let ent = lse1 - wg_sum(acc_pa, lid.x) / s1;" : ""}
  ${K ? "let ks = wg_sum(acc_ks, lid.x); let ka = wg_sum(acc_ka, lid.x); let lsek = m1 + log(ks); let ent = lsek - ka / ks;" : ""}
  ${o.kl ? "let lses = m1 * p.invtau + log(wg_sum(acc_ss, lid.x)); let lset = mt + log(st);" : ""}
  ${o.kl ? "let kl = wg_sum(acc_kl, lid.x) / st - lset + lses;" : ""}
  if (lid.x == 0u) {
    let vr = (p.vo + r) * 3u;
    vals[vr] = ${o.ce ? "ce" : "0.0"};
    vals[vr + 1u] = ${o.kl ? "select(0.0, kl * m, m != 0.0)" : "0.0"};
    vals[vr + 2u] = ${o.ent ? "select(0.0, ent * m, m != 0.0)" : "0.0"};
  }
  ${o.write ? writeWgsl(o, wg, K, cap, A, Tv) : ""}
}`,
    });
  }
}

/**
 * How the K-th largest logit is found: per-lane register lists (`topKWgsl`, one read of the row), or K
 * rounds of a workgroup arg-max below the previous pick (`topKSelectWgsl`, K reads of the row, almost
 * no state per lane). Fallback adapters (Chromium's SwiftShader) get the second form for K > 8: their
 * shader compiler does not finish the unrolled lists at K = 20 (the device is lost). `TOP_K_FORM.force`
 * picks one form everywhere (tests).
 */
export const TOP_K_FORM: { force: "lists" | "selection" | null } = { force: null };
const topKBySelection = (b: GpuBackend, K: number): boolean =>
  TOP_K_FORM.force ? TOP_K_FORM.force === "selection" : b.traits.fallback === true && K > 8;

/** "No element" as an index of the top-k searches. */
const NONE = "0xffffffffu";

/**
 * One round of the top-k searches: each lane's candidate (`value`, `index`; index NONE = none) reduced
 * over the workgroup (pv/pix) to the largest, ties to the lower index, left in kth_v / kth_i.
 */
const wgArgmaxWgsl = (wg: number, value: string, index: string): string => `pv[lid.x] = ${value}; pix[lid.x] = ${index};
    workgroupBarrier();
    for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
      if (lid.x < s) {
        let ov = pv[lid.x + s]; let oi = pix[lid.x + s];
        let better = pix[lid.x] == ${NONE} || ov > pv[lid.x] || (ov == pv[lid.x] && oi < pix[lid.x]);
        if (oi != ${NONE} && better) { pv[lid.x] = ov; pix[lid.x] = oi; }
      }
      workgroupBarrier();
    }
    kth_v = pv[0]; kth_i = pix[0];
    workgroupBarrier();`;

/** The K-th largest (value, index) pair by K rounds of a workgroup arg-max over the elements below the last pick. */
function topKSelectWgsl(K: number, wg: number, A: (j: string) => string): string {
  return `var kth_v = 0.0; var kth_i = ${NONE};
  for (var q = 0u; q < ${K}u; q++) {
    var bv = -${FLT_MAX}; var bi = ${NONE};
    for (var j = lid.x; j < p.V; j += ${wg}u) {
      let v = ${A("j")};
      let below = kth_i == ${NONE} || v < kth_v || (v == kth_v && j > kth_i);
      if (below && (bi == ${NONE} || v > bv)) { bv = v; bi = j; }
    }
    ${wgArgmaxWgsl(wg, "bv", "bi")}
  }
`;
}

/**
 * Per-lane sorted top-K lists in registers (unrolled, constant indices: no private-array gathers),
 * merged in K rounds of a workgroup arg-max: the K-th largest (value, index) pair, ties to the lower index.
 */
function topKWgsl(K: number, wg: number, A: (j: string) => string): string {
  const q = Array.from({ length: K }, (_, i) => i);
  const insert = q
    .map(
      (i) => `{ let s = c || ti${i} == ${NONE} || x > tv${i};
        let nv = select(tv${i}, x, s); let ni = select(ti${i}, xi, s);
        x = select(x, tv${i}, s); xi = select(xi, ti${i}, s); tv${i} = nv; ti${i} = ni; c = s; }`,
    )
    .join("\n      ");
  const shift = `${q
    .slice(0, -1)
    .map((i) => `tv${i} = tv${i + 1}; ti${i} = ti${i + 1};`)
    .join(" ")} tv${K - 1} = -${FLT_MAX}; ti${K - 1} = ${NONE};`;
  return `${q.map((i) => `var tv${i} = -${FLT_MAX}; var ti${i} = ${NONE};`).join(" ")}
  for (var j = lid.x; j < p.V; j += ${wg}u) {
    let v = ${A("j")};
    if (ti${K - 1} == ${NONE} || v > tv${K - 1}) {
      var x = v; var xi = j; var c = false;
      ${insert}
    }
  }
  var kth_v = 0.0; var kth_i = 0u;
  for (var q = 0u; q < ${K}u; q++) {
    ${wgArgmaxWgsl(wg, "tv0", "ti0")}
    if (ti0 == kth_i && ti0 != ${NONE}) { ${shift} }
  }
`;
}

function writeWgsl(o: RowPass, wg: number, K: number, cap: boolean, A: (j: string) => string, Tv: (j: string) => string): string {
  return `storageBarrier();
  let wce = w[p.wo];
  let wkl = w[p.wo + 1u] * m;
  let wen = w[p.wo + 2u] * m;
  for (var j = lid.x; j < p.V; j += ${wg}u) {
    let a = ${A("j")};
    let e = exp(a - m1);
    var g = 0.0;
    ${o.ce ? "if (yok) { g += wce * (e / s1 - select(0.0, 1.0, j == u32(y))); }" : ""}
    ${o.kl ? `if (m != 0.0) { g += wkl * (exp(a * p.invtau - lses) - exp(${Tv("j")} * p.invtau - lset)) * p.invtau; }` : ""}
    ${o.ent && !K ? "if (m != 0.0) { let pj = e / s1; g -= wen * pj * (a - lse1 + ent); }" : ""}
    ${K ? "if (m != 0.0 && (a > kth_v || (a == kth_v && j <= kth_i))) { let pk = e / ks; g -= wen * pk * (a - lsek + ent); }" : ""}
    g *= p.scale;
    ${cap ? "let u = a / (p.cap * p.scale); g *= 1.0 - u * u;" : ""}
    zs[rb + j] = g;
  }`;
}

// ---- the float64 oracle: the plain formulas ------------------------------------------------------

const logSoftmaxRow = (z: number[]): number[] => {
  const { max, sum } = rowMaxSumExp(z.length, (j) => z[j]);
  const lse = max + Math.log(sum);
  return z.map((v) => v - lse);
};

function cpuPass(o: RowPass, a: RowArgs, n: number, V: number): void {
  const zs = cpuData(a.zs);
  const zt = o.kl ? cpuValues(a.zt!) : null;
  const tg = o.ce ? cpuValues(a.targets!) : null;
  const mk = cpuValues(a.mask);
  const [wce, wkl, wen] = cpuValues(a.weights);
  const vals = cpuData(a.vals);
  const c = o.softcap;
  const capped = (x: number) => (c !== null && c > 0 ? c * Math.tanh(x / c) : x);
  const base = a.zs.offset;
  for (let r = 0; r < n; r++) {
    const raw = Array.from(zs.subarray(base + r * V, base + (r + 1) * V));
    const z = raw.map((x) => capped(x) * o.scale);
    const m = mk[r];
    const grad = new Array<number>(V).fill(0);
    // cross-entropy: −log softmax(z)[y]; ∂/∂z = softmax(z) − onehot(y)
    const logp = logSoftmaxRow(z);
    let ce = 0;
    if (o.ce) {
      const y = tg![r];
      if (y !== -100 && (y < 0 || y >= V)) throw new ArgumentError(`regularizers: target ${y} is out of range [0, ${V}) and not −100`);
      if (y !== -100) {
        ce = -logp[y];
        for (let j = 0; j < V; j++) grad[j] += wce * (Math.exp(logp[j]) - (j === y ? 1 : 0));
      }
    }
    // KL(P_T ‖ P_S) at temperature τ: Σ p_t (log p_t − log p_s); ∂/∂z_s = (p_s − p_t)/τ
    let kl = 0;
    if (o.kl) {
      const ls = logSoftmaxRow(z.map((v) => v / o.tau));
      const lt = logSoftmaxRow(Array.from({ length: V }, (_, j) => capped(zt![r * V + j]) / o.tau));
      for (let j = 0; j < V; j++) kl += Math.exp(lt[j]) * (lt[j] - ls[j]);
      if (m !== 0) for (let j = 0; j < V; j++) grad[j] += wkl * m * ((Math.exp(ls[j]) - Math.exp(lt[j])) / o.tau);
    }
    // entropy H = −Σ p log p of softmax(z), or of the top-k logits renormalised; ∂H/∂z_j = −p_j (log p_j + H) on the set
    let ent = 0;
    if (o.ent) {
      const set =
        o.topK > 0 && o.topK < V
          ? Array.from({ length: V }, (_, j) => j)
              .sort((x, y) => z[y] - z[x] || x - y)
              .slice(0, o.topK)
          : Array.from({ length: V }, (_, j) => j);
      const ls = logSoftmaxRow(set.map((j) => z[j]));
      ent = -ls.reduce((s, l) => s + Math.exp(l) * l, 0);
      if (m !== 0) set.forEach((j, q) => (grad[j] -= wen * m * Math.exp(ls[q]) * (ls[q] + ent)));
    }
    const vr = (a.row0 + r) * ROW_VALUES;
    vals[vr] = ce;
    vals[vr + 1] = m !== 0 ? kl * m : 0;
    vals[vr + 2] = m !== 0 ? ent * m : 0;
    if (o.write)
      for (let j = 0; j < V; j++) {
        const u = c !== null && c > 0 ? Math.tanh(raw[j] / c) : 0;
        zs[base + r * V + j] = grad[j] * o.scale * (1 - u * u);
      }
  }
}
