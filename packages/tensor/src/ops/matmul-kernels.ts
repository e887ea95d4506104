// Fast f32 matmul kernels: `subgroup` (software adapters such as lavapipe: one SIMD group per
// workgroup, A broadcast with subgroupBroadcast; ~30 GFLOP/s at 1024³), `register`, and a shared-memory tiled kernel for GPUs.
//   C[b] (M x N) = op(A[b]) (M x K) · op(B[b]) (K x N), f32 row-major; transA: A stored K x M; transB: B stored N x K.
// Batch index = workgroup_id.z; per-operand batch strides and base offsets are in elements (0 = broadcast).
// With vec4 the strides and offsets must be multiples of 4 (see matmulVec4Ok). Tuning notes: docs/benchmarks.md.
export type MatmulKernel = {
  code: string;
  workgroupSize: [number, number, number];
  tileM: number; // rows of C per workgroup
  tileN: number; // cols of C per workgroup
  needsSubgroups: boolean; // requires the "subgroups" device feature
};

export type MatmulOpts = {
  transA: boolean;
  transB: boolean;
  /** vec4 loads/stores. Only valid when matmulVec4Ok(...) is true for the actual sizes. */
  vec4: boolean;
  /**
   * "subgroup" (default): CPU/llvmpipe-optimised; one subgroup per workgroup, A broadcast with subgroupBroadcast.
   *   Needs the "subgroups" feature AND subgroupSize == the device's (fixed) subgroup size
   *   (adapter.info.subgroupMinSize == subgroupMaxSize; 8 on llvmpipe/AVX2).
   * "register": no subgroups, no shared memory; each invocation computes a tileM x colsPerLane register tile.
   */
  variant?: "subgroup" | "register";
  /** rows of C per workgroup ("subgroup") or per invocation ("register"). */
  rows?: number;
  /** columns of C per invocation. */
  colsPerLane?: number;
  /** "subgroup" only: subgroup size the code is generated for (must equal the device's). */
  subgroupSize?: number;
  /** "register" only: invocations per workgroup (laid out along N). */
  lanes?: number;
  /** "register" only: k values per loop iteration (1, or 4 with vec4: A / B^T then read as vec4 along k). */
  kStep?: 1 | 4;
  /** alpha scaling and/or accumulation into C in the store. */
  epilogue?: Epilogue;
  /** "subgroup" only: C = A·B + A2·B2 (a second pair with its own K, same layouts), one pass of stores. */
  dual?: boolean;
};

/**
 * When the vec4 kernels may be used (one rule for every generator and layout; batch strides must then also be
 * multiples of 4, which holds for contiguous batches). Otherwise generate with vec4 = false (scalar loads).
 *   N % 4 == 0  (B / C rows are read / written as vec4)
 *   K % 4 == 0  (A / B^T rows are read along k as vec4; the subgroup kernel steps k by 4)
 *   M % 4 == 0  only when transA (A^T rows are read along m as vec4)
 */
export function matmulVec4Ok(M: number, N: number, K: number, transA: boolean, _transB: boolean): boolean {
  return N % 4 === 0 && K % 4 === 0 && (!transA || M % 4 === 0);
}

/** Uniform fields of every fast kernel, in struct order (see paramsDecl): element strides and offsets. */
export const FAST_PARAMS = [
  "M",
  "N",
  "K",
  "batch",
  "strideA",
  "strideB",
  "strideC",
  "aOff",
  "bOff",
  "cOff",
  "K2",
  "a2Off",
  "b2Off",
] as const;
/** The u32 fields above, then `alpha` (f32): the backend packs u32 fields before f32 ones. */
const HEADER =
  `struct Params { ${FAST_PARAMS.map((f) => `${f}: u32`).join(", ")}, alpha: f32 }\n` + "@group(0) @binding(0) var<uniform> p: Params;";

/** What the store does with an accumulator value `v` at `C[i]`: scale by alpha, add the old C. */
export interface Epilogue {
  /** C = alpha·A·B (`p.alpha`). */
  alpha?: boolean;
  /** C += … (C is read and written). */
  accumulate?: boolean;
}
const epi = (e: Epilogue | undefined, target: string, v: string): string =>
  `${target} = ${e?.accumulate ? `${target} + ` : ""}${e?.alpha ? `p.alpha * ${v}` : v};`;
const epiKey = (e: Epilogue | undefined): string => `${e?.alpha ? "a" : ""}${e?.accumulate ? "+" : ""}`;

// balora's binding layout: 0 = params, then inputs, then outputs.
function bindings(aT: string, bT: string, cT: string, dual = false): string[] {
  const pair2 = dual
    ? [`@group(0) @binding(3) var<storage, read> A2: array<${aT}>;`, `@group(0) @binding(4) var<storage, read> B2: array<${bT}>;`]
    : [];
  return [
    `@group(0) @binding(1) var<storage, read> A: array<${aT}>;`,
    `@group(0) @binding(2) var<storage, read> B: array<${bT}>;`,
    ...pair2,
    `@group(0) @binding(${dual ? 5 : 3}) var<storage, read_write> C: array<${cT}>;`,
  ];
}

// Shared epilogue: accumulators c{r}_{q} are vec4 (columns col0+4q .. +3) when CN%4==0, else scalars c{r}_{c}.
function emitStores(S: string[], TM: number, CN: number, v4acc: boolean, v4store: boolean, e: Epilogue | undefined) {
  for (let r = 0; r < TM; r++) {
    S.push(`  if (row0 + ${r}u < M) {`);
    S.push(`    let cr = coff + (row0 + ${r}u) * N + col0;`);
    if (v4acc) {
      for (let q = 0; q < CN / 4; q++) {
        if (v4store) S.push(`    if (col0 + ${q * 4}u < N) { ${epi(e, `C[cr / 4u + ${q}u]`, `c${r}_${q}`)} }`);
        else
          for (let i = 0; i < 4; i++)
            S.push(`    if (col0 + ${q * 4 + i}u < N) { ${epi(e, `C[cr + ${q * 4 + i}u]`, `c${r}_${q}[${i}]`)} }`);
      }
    } else {
      for (let c = 0; c < CN; c++) S.push(`    if (col0 + ${c}u < N) { ${epi(e, `C[cr + ${c}u]`, `c${r}_${c}`)} }`);
    }
    S.push(`  }`);
  }
}

export function matmulWgsl(opts: MatmulOpts): MatmulKernel {
  return (opts.variant ?? "subgroup") === "subgroup" ? subgroupKernel(opts) : registerKernel(opts);
}

// ---------------------------------------------------------------------------------------------
// "subgroup" variant (fastest on llvmpipe). One workgroup == one subgroup of SG invocations.
// The subgroup computes C[row0 .. row0+TM, colBase .. colBase+SG*CN]; lane s owns CN consecutive columns.
// Every lane needs the same TM x KS block of A per k-step, so the block is loaded once, spread over the
// lanes (each lane loads TM*KS/(4*SG) vec4), and redistributed with subgroupBroadcast(x, constLane),
// which llvmpipe compiles to a register extract + splat. B is loaded per lane (vec4 along n, or along k
// for B^T). FMAs are emitted row by row so the accumulators of one row are the only ones live.
// ---------------------------------------------------------------------------------------------
/**
 * One pass of the subgroup kernel's k-loop over an operand pair (A·B with its own K and offsets),
 * accumulating into the shared c{r}_{q} registers; `x` suffixes the pair's setup variables.
 */
function subgroupPass(S: string[], o: MatmulOpts, x: string, A: string, B: string, K: string, aoff: string, boff: string): void {
  const { transA, transB } = o;
  const v4 = o.vec4;
  const SG = o.subgroupSize ?? 8;
  const TM = o.rows ?? 32;
  const CN = o.colsPerLane ?? 4;
  const KS = 4;
  const units = v4 ? (TM * KS) / 4 : TM * KS;
  const aPer = Math.ceil(units / SG);
  // ---- this lane's A units
  for (let j = 0; j < aPer; j++) {
    const u = (j + 1) * SG <= units ? `${j * SG}u + sid` : `min(${j * SG}u + sid, ${units - 1}u)`;
    S.push(`  let au${x}${j} = ${u};`);
    if (!transA) {
      if (v4) S.push(`  let ar${x}${j} = ${aoff} + min(row0 + au${x}${j} % ${TM}u, M - 1u) * ${K} + (au${x}${j} / ${TM}u) * 4u;`);
      else S.push(`  let ar${x}${j} = ${aoff} + min(row0 + au${x}${j} % ${TM}u, M - 1u) * ${K}; let ak${x}${j} = au${x}${j} / ${TM}u;`);
    } else if (v4) {
      S.push(`  let am${x}${j} = ${aoff} + min(row0 + (au${x}${j} % ${TM / 4}u) * 4u, M - 4u);`);
      S.push(`  let ak${x}${j} = au${x}${j} / ${TM / 4}u;`);
    } else {
      S.push(`  let am${x}${j} = ${aoff} + min(row0 + au${x}${j} % ${TM}u, M - 1u);`);
      S.push(`  let ak${x}${j} = au${x}${j} / ${TM}u;`);
    }
  }
  // ---- this lane's B columns
  if (!transB) {
    if (v4) for (let q = 0; q < CN / 4; q++) S.push(`  let bc${x}${q} = ${boff} + min(col0 + ${q * 4}u, N - 4u);`);
    else for (let c = 0; c < CN; c++) S.push(`  let bc${x}${c} = ${boff} + min(col0 + ${c}u, N - 1u);`);
  } else {
    for (let c = 0; c < CN; c++) S.push(`  let bc${x}${c} = ${boff} + min(col0 + ${c}u, N - 1u) * ${K};`);
  }
  S.push(`  for (var k = 0u; k < ${K}; k += ${KS}u) {`);
  if (!v4) for (let kk = 0; kk < KS; kk++) S.push(`    let kc${kk} = min(k + ${kk}u, ${K} - 1u); let kv${kk} = k + ${kk}u < ${K};`);
  // A loads (one or a few per lane)
  for (let j = 0; j < aPer; j++) {
    if (!transA) {
      if (v4) S.push(`    let la${j} = ${A}[(ar${x}${j} + k) / 4u];`);
      else S.push(`    let la${j} = select(0.0, ${A}[ar${x}${j} + min(k + ak${x}${j}, ${K} - 1u)], k + ak${x}${j} < ${K});`);
    } else {
      if (v4) S.push(`    let la${j} = ${A}[((k + ak${x}${j}) * M + am${x}${j}) / 4u];`);
      else S.push(`    let la${j} = select(0.0, ${A}[min(k + ak${x}${j}, ${K} - 1u) * M + am${x}${j}], k + ak${x}${j} < ${K});`);
    }
  }
  // B loads (per lane)
  if (!transB) {
    for (let kk = 0; kk < KS; kk++) {
      if (v4) {
        S.push(`    let br${kk} = (k + ${kk}u) * N;`);
        for (let q = 0; q < CN / 4; q++) S.push(`    let b${kk}_${q} = ${B}[(br${kk} + bc${x}${q}) / 4u];`);
      } else {
        for (let q = 0; q < CN / 4; q++) {
          const comps = [0, 1, 2, 3].map((i) => `${B}[kc${kk} * N + bc${x}${q * 4 + i}]`).join(", ");
          S.push(`    let b${kk}_${q} = select(vec4<f32>(0.0), vec4<f32>(${comps}), kv${kk});`);
        }
      }
    }
  } else {
    for (let c = 0; c < CN; c++) {
      if (v4) S.push(`    let bt${c} = ${B}[(bc${x}${c} + k) / 4u];`);
      else
        S.push(
          `    let bt${c} = select(vec4<f32>(0.0), vec4<f32>(${[0, 1, 2, 3].map((kk) => `${B}[bc${x}${c} + kc${kk}]`).join(", ")}), ` +
            "vec4<bool>(kv0, kv1, kv2, kv3));",
        );
    }
    for (let kk = 0; kk < KS; kk++)
      for (let q = 0; q < CN / 4; q++)
        S.push(`    let b${kk}_${q} = vec4<f32>(bt${q * 4}[${kk}], bt${q * 4 + 1}[${kk}], bt${q * 4 + 2}[${kk}], bt${q * 4 + 3}[${kk}]);`);
  }
  // A value (row r, k-sub kk) -> [unit, component]
  const aRef = (r: number, kk: number): [number, number] => {
    if (!transA) return v4 ? [Math.floor(kk / 4) * TM + r, kk % 4] : [kk * TM + r, -1];
    return v4 ? [kk * (TM / 4) + (r >> 2), r & 3] : [kk * TM + r, -1];
  };
  const done = new Set<number>();
  for (let r = 0; r < TM; r++) {
    for (let kk = 0; kk < KS; kk++) {
      const [u, comp] = aRef(r, kk);
      if (!done.has(u)) {
        done.add(u);
        S.push(`    let A${u} = subgroupBroadcast(la${Math.floor(u / SG)}, ${u % SG}u);`);
      }
      const a = comp < 0 ? `A${u}` : `A${u}[${comp}]`;
      for (let q = 0; q < CN / 4; q++) S.push(`    c${r}_${q} = fma(vec4<f32>(${a}), b${kk}_${q}, c${r}_${q});`);
    }
  }
  S.push(`  }`);
}

function subgroupKernel(o: MatmulOpts): MatmulKernel {
  const v4 = o.vec4;
  const SG = o.subgroupSize ?? 8;
  const TM = o.rows ?? 32;
  const CN = o.colsPerLane ?? 4;
  if (v4 && o.transA && TM % 4) throw new Error("rows must be a multiple of 4 for vec4 A^T");
  if (CN % 4) throw new Error("colsPerLane must be a multiple of 4");
  const ty = v4 ? "vec4<f32>" : "f32";
  const S: string[] = ["enable subgroups;", HEADER, ...bindings(ty, ty, v4 ? "vec4<f32>" : "f32", !!o.dual)];
  S.push(`@compute @workgroup_size(${SG})`);
  S.push(`fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) sid: u32) {`);
  S.push(`  let M = p.M; let N = p.N; let K = p.K;`);
  S.push(`  let row0 = wid.y * ${TM}u;`);
  S.push(`  let col0 = (wid.x * ${SG}u + sid) * ${CN}u;`);
  S.push(`  let aoff = p.aOff + wid.z * p.strideA; let boff = p.bOff + wid.z * p.strideB; let coff = p.cOff + wid.z * p.strideC;`);
  for (let r = 0; r < TM; r++) for (let q = 0; q < CN / 4; q++) S.push(`  var c${r}_${q} = vec4<f32>(0.0);`);
  subgroupPass(S, o, "", "A", "B", "K", "aoff", "boff");
  if (o.dual) subgroupPass(S, o, "2", "A2", "B2", "p.K2", "p.a2Off", "p.b2Off");
  emitStores(S, TM, CN, true, v4, o.epilogue);
  S.push(`}`);
  return { code: S.join("\n"), workgroupSize: [SG, 1, 1], tileM: TM, tileN: SG * CN, needsSubgroups: true };
}

// ---------------------------------------------------------------------------------------------
// "register" variant: no subgroups. Invocation computes TM x CN; workgroup = `lanes` invocations along N.
// One k per iteration; vec4 only along the output dimension (A^T along m, B along n), scalar along k.
// ---------------------------------------------------------------------------------------------
function registerKernel(o: MatmulOpts): MatmulKernel {
  const { transA, transB } = o;
  const v4 = o.vec4;
  const TM = o.rows ?? 16;
  const CN = o.colsPerLane ?? 16;
  const WX = o.lanes ?? 8;
  // k-step: 4 when vec4 and an operand is contiguous along k (A in NN/NT, B^T in NT/TT) -> vec4 along k
  const KS = o.kStep ?? (v4 && transB ? 4 : 1);
  if (KS !== 1 && !(v4 && KS === 4)) throw new Error("kStep 4 needs vec4");
  if (CN % 4) throw new Error("colsPerLane must be a multiple of 4");
  const aK4 = v4 && !transA && KS === 4; // A vec4 along k
  const aM4 = v4 && transA; // A^T vec4 along m
  const bN4 = v4 && !transB; // B vec4 along n
  const bK4 = v4 && transB && KS === 4; // B^T vec4 along k
  if (aM4 && TM % 4) throw new Error("rows must be a multiple of 4 for vec4 A^T");
  const S: string[] = [HEADER, ...bindings(aK4 || aM4 ? "vec4<f32>" : "f32", bN4 || bK4 ? "vec4<f32>" : "f32", v4 ? "vec4<f32>" : "f32")];
  S.push(`@compute @workgroup_size(${WX})`);
  S.push(`fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {`);
  S.push(`  let M = p.M; let N = p.N; let K = p.K;`);
  S.push(`  let row0 = wid.y * ${TM}u;`);
  S.push(`  let col0 = (wid.x * ${WX}u + lid) * ${CN}u;`);
  S.push(`  let aoff = p.aOff + wid.z * p.strideA; let boff = p.bOff + wid.z * p.strideB; let coff = p.cOff + wid.z * p.strideC;`);
  if (!transA) for (let r = 0; r < TM; r++) S.push(`  let ia${r} = aoff + min(row0 + ${r}u, M - 1u) * K;`);
  else if (aM4) for (let q = 0; q < TM / 4; q++) S.push(`  let ia${q} = aoff + min(row0 + ${q * 4}u, M - 4u);`);
  else for (let r = 0; r < TM; r++) S.push(`  let ia${r} = aoff + min(row0 + ${r}u, M - 1u);`);
  if (!transB) {
    if (bN4) for (let q = 0; q < CN / 4; q++) S.push(`  let ib${q} = boff + min(col0 + ${q * 4}u, N - 4u);`);
    else for (let c = 0; c < CN; c++) S.push(`  let ib${c} = boff + min(col0 + ${c}u, N - 1u);`);
  } else for (let c = 0; c < CN; c++) S.push(`  let ib${c} = boff + min(col0 + ${c}u, N - 1u) * K;`);
  for (let r = 0; r < TM; r++) for (let q = 0; q < CN / 4; q++) S.push(`  var c${r}_${q} = vec4<f32>(0.0);`);
  S.push(`  for (var k = 0u; k < K; k += ${KS}u) {`);
  // all loads first (each load is a branchy per-lane sequence on llvmpipe), then one straight FMA block
  const bvec: string[][] = [];
  for (let kk = 0; kk < KS; kk++) bvec.push([]);
  if (!transB) {
    for (let kk = 0; kk < KS; kk++) {
      if (bN4) {
        S.push(`    let br${kk} = (k + ${kk}u) * N;`);
        for (let q = 0; q < CN / 4; q++) {
          S.push(`    let b${kk}_${q} = B[(br${kk} + ib${q}) / 4u];`);
          bvec[kk].push(`b${kk}_${q}`);
        }
      } else
        for (let q = 0; q < CN / 4; q++) {
          S.push(`    let b${kk}_${q} = vec4<f32>(${[0, 1, 2, 3].map((i) => `B[(k + ${kk}u) * N + ib${q * 4 + i}]`).join(", ")});`);
          bvec[kk].push(`b${kk}_${q}`);
        }
    }
  } else if (bK4) {
    for (let c = 0; c < CN; c++) S.push(`    let bt${c} = B[(ib${c} + k) / 4u];`);
    for (let kk = 0; kk < KS; kk++)
      for (let q = 0; q < CN / 4; q++) bvec[kk].push(`vec4<f32>(${[0, 1, 2, 3].map((i) => `bt${q * 4 + i}[${kk}]`).join(", ")})`);
  } else {
    for (let q = 0; q < CN / 4; q++) {
      S.push(`    let b0_${q} = vec4<f32>(${[0, 1, 2, 3].map((i) => `B[ib${q * 4 + i} + k]`).join(", ")});`);
      bvec[0].push(`b0_${q}`);
    }
  }
  const aval = (r: number, kk: number): string => {
    if (aK4) return `av${r}[${kk}]`;
    if (aM4) return `av${kk}_${r >> 2}[${r & 3}]`;
    return `as${kk}_${r}`;
  };
  for (let kk = 0; kk < KS; kk++) {
    if (aK4) {
      if (kk === 0) for (let r = 0; r < TM; r++) S.push(`    let av${r} = A[(ia${r} + k) / 4u];`);
    } else if (aM4) for (let q = 0; q < TM / 4; q++) S.push(`    let av${kk}_${q} = A[((k + ${kk}u) * M + ia${q}) / 4u];`);
    else
      for (let r = 0; r < TM; r++) S.push(`    let as${kk}_${r} = ${!transA ? `A[ia${r} + k + ${kk}u]` : `A[(k + ${kk}u) * M + ia${r}]`};`);
  }
  for (let r = 0; r < TM; r++)
    for (let kk = 0; kk < KS; kk++)
      for (let q = 0; q < CN / 4; q++) S.push(`    c${r}_${q} = fma(vec4<f32>(${aval(r, kk)}), ${bvec[kk][q]}, c${r}_${q});`);
  S.push(`  }`);
  emitStores(S, TM, CN, true, v4, o.epilogue);
  S.push(`}`);
  return { code: S.join("\n"), workgroupSize: [WX, 1, 1], tileM: TM, tileN: WX * CN, needsSubgroups: false };
}

// ---------------------------------------------------------------------------------------------
// Shared-memory tiled variant for real (discrete) GPUs. 16x16 = 256 invocations, each computes
// (4*RM) x (4*RN) outputs (RM=RN=1 -> 64x64 tile, RM=RN=2 -> 128x128 tile); K tile = KT.
// Operand tiles are staged k-major in workgroup memory (As[k][m], Bs[k][n], vec4 along m / n) so the
// inner loop reads vec4s; transposition for A (non-transposed) and B^T happens while staging.
// Thread (tx, ty) owns the column vec4-groups tx + 16*j and row vec4-groups ty + 16*i (strided, so that
// neighbouring threads read neighbouring vec4s of Bs: no bank conflicts).
// ---------------------------------------------------------------------------------------------
export type MatmulTiledOpts = {
  transA: boolean;
  transB: boolean;
  vec4: boolean;
  tile?: 64 | 128;
  kTile?: 8 | 16 | 32;
  epilogue?: Epilogue;
};

export function matmulTiledWgsl(o: MatmulTiledOpts): MatmulKernel {
  const { transA, transB } = o;
  const v4 = o.vec4;
  const R = (o.tile ?? 64) / 64; // vec4 groups per thread per dimension
  const BM = 64 * R,
    BN = 64 * R,
    KT = o.kTile ?? 16;
  const T = 256;
  if (((BM * KT) / 4) % T) throw new Error("tile*kTile/4 must be a multiple of 256 (tile 64 -> kTile 16|32)");
  const S: string[] = [HEADER, ...bindings(v4 ? "vec4<f32>" : "f32", v4 ? "vec4<f32>" : "f32", v4 ? "vec4<f32>" : "f32")];
  S.push(`var<workgroup> As: array<vec4<f32>, ${(KT * BM) / 4}>; // [k][m/4]`);
  S.push(`var<workgroup> Bs: array<vec4<f32>, ${(KT * BN) / 4}>; // [k][n/4]`);
  S.push(`@compute @workgroup_size(16, 16, 1)`);
  S.push(
    `fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>, ` +
      `@builtin(local_invocation_index) li: u32) {`,
  );
  S.push(`  let M = p.M; let N = p.N; let K = p.K;`);
  S.push(`  let m0 = wid.y * ${BM}u; let n0 = wid.x * ${BN}u;`);
  S.push(`  let aoff = p.aOff + wid.z * p.strideA; let boff = p.bOff + wid.z * p.strideB; let coff = p.cOff + wid.z * p.strideC;`);
  for (let i = 0; i < R * 4; i++) for (let j = 0; j < R; j++) S.push(`  var c${i}_${j} = vec4<f32>(0.0);`);
  // staging helpers: element loaders with zero fill
  S.push(`  for (var k0 = 0u; k0 < K; k0 += ${KT}u) {`);
  // ---- stage A tile: BM x KT values into As[k][m]
  const stageA = () => {
    const total = BM * KT;
    if (!transA) {
      // A row-major: read along k
      if (v4) {
        const per = total / 4 / T; // vec4 per thread
        for (let s = 0; s < per; s++) {
          S.push(`    { let e = li + ${s * T}u; let m = e / ${KT / 4}u; let kq = (e % ${KT / 4}u) * 4u;`);
          S.push(`      let gm = m0 + m; let gk = k0 + kq;`);
          S.push(`      var v = vec4<f32>(0.0); if (gm < M && gk < K) { v = A[(aoff + gm * K + gk) / 4u]; }`);
          S.push(`      let mq = m / 4u; let mc = m % 4u;`);
          for (let t = 0; t < 4; t++) S.push(`      As[(kq + ${t}u) * ${BM / 4}u + mq][mc] = v[${t}];`);
          S.push(`    }`);
        }
      } else {
        const per = total / T;
        for (let s = 0; s < per; s++) {
          S.push(`    { let e = li + ${s * T}u; let m = e / ${KT}u; let kk = e % ${KT}u; let gm = m0 + m; let gk = k0 + kk;`);
          S.push(`      var v = 0.0; if (gm < M && gk < K) { v = A[aoff + gm * K + gk]; }`);
          S.push(`      As[kk * ${BM / 4}u + m / 4u][m % 4u] = v; }`);
        }
      }
    } else {
      // A^T (K x M) row-major: read along m
      if (v4) {
        const per = total / 4 / T;
        for (let s = 0; s < per; s++) {
          S.push(
            `    { let e = li + ${s * T}u; let kk = e / ${BM / 4}u; let mq = e % ${BM / 4}u; let gk = k0 + kk; let gm = m0 + mq * 4u;`,
          );
          S.push(`      var v = vec4<f32>(0.0); if (gk < K && gm < M) { v = A[(aoff + gk * M + gm) / 4u]; }`);
          S.push(`      As[kk * ${BM / 4}u + mq] = v; }`);
        }
      } else {
        const per = total / T;
        for (let s = 0; s < per; s++) {
          S.push(`    { let e = li + ${s * T}u; let kk = e / ${BM}u; let m = e % ${BM}u; let gk = k0 + kk; let gm = m0 + m;`);
          S.push(`      var v = 0.0; if (gk < K && gm < M) { v = A[aoff + gk * M + gm]; }`);
          S.push(`      As[kk * ${BM / 4}u + m / 4u][m % 4u] = v; }`);
        }
      }
    }
  };
  const stageB = () => {
    const total = BN * KT;
    if (!transB) {
      if (v4) {
        const per = total / 4 / T;
        for (let s = 0; s < per; s++) {
          S.push(
            `    { let e = li + ${s * T}u; let kk = e / ${BN / 4}u; let nq = e % ${BN / 4}u; let gk = k0 + kk; let gn = n0 + nq * 4u;`,
          );
          S.push(`      var v = vec4<f32>(0.0); if (gk < K && gn < N) { v = B[(boff + gk * N + gn) / 4u]; }`);
          S.push(`      Bs[kk * ${BN / 4}u + nq] = v; }`);
        }
      } else {
        const per = total / T;
        for (let s = 0; s < per; s++) {
          S.push(`    { let e = li + ${s * T}u; let kk = e / ${BN}u; let n = e % ${BN}u; let gk = k0 + kk; let gn = n0 + n;`);
          S.push(`      var v = 0.0; if (gk < K && gn < N) { v = B[boff + gk * N + gn]; }`);
          S.push(`      Bs[kk * ${BN / 4}u + n / 4u][n % 4u] = v; }`);
        }
      }
    } else {
      // B^T (N x K): read along k, transpose into Bs[k][n]
      if (v4) {
        const per = total / 4 / T;
        for (let s = 0; s < per; s++) {
          S.push(
            `    { let e = li + ${s * T}u; let n = e / ${KT / 4}u; let kq = (e % ${KT / 4}u) * 4u; let gn = n0 + n; let gk = k0 + kq;`,
          );
          S.push(`      var v = vec4<f32>(0.0); if (gn < N && gk < K) { v = B[(boff + gn * K + gk) / 4u]; }`);
          S.push(`      let nq = n / 4u; let nc = n % 4u;`);
          for (let t = 0; t < 4; t++) S.push(`      Bs[(kq + ${t}u) * ${BN / 4}u + nq][nc] = v[${t}];`);
          S.push(`    }`);
        }
      } else {
        const per = total / T;
        for (let s = 0; s < per; s++) {
          S.push(`    { let e = li + ${s * T}u; let n = e / ${KT}u; let kk = e % ${KT}u; let gn = n0 + n; let gk = k0 + kk;`);
          S.push(`      var v = 0.0; if (gn < N && gk < K) { v = B[boff + gn * K + gk]; }`);
          S.push(`      Bs[kk * ${BN / 4}u + n / 4u][n % 4u] = v; }`);
        }
      }
    }
  };
  stageA();
  stageB();
  S.push(`    workgroupBarrier();`);
  S.push(`    for (var kk = 0u; kk < ${KT}u; kk++) {`);
  for (let i = 0; i < R; i++) S.push(`      let a${i} = As[kk * ${BM / 4}u + l.y + ${16 * i}u];`);
  for (let j = 0; j < R; j++) S.push(`      let b${j} = Bs[kk * ${BN / 4}u + l.x + ${16 * j}u];`);
  for (let i = 0; i < R; i++)
    for (let t = 0; t < 4; t++)
      for (let j = 0; j < R; j++) S.push(`      c${i * 4 + t}_${j} = fma(vec4<f32>(a${i}[${t}]), b${j}, c${i * 4 + t}_${j});`);
  S.push(`    }`);
  S.push(`    workgroupBarrier();`);
  S.push(`  }`);
  // stores: row = m0 + (l.y + 16 i)*4 + t, col = n0 + (l.x + 16 j)*4
  for (let i = 0; i < R; i++)
    for (let t = 0; t < 4; t++) {
      S.push(`  { let gm = m0 + (l.y + ${16 * i}u) * 4u + ${t}u;`);
      S.push(`    if (gm < M) {`);
      for (let j = 0; j < R; j++) {
        S.push(`      { let gn = n0 + (l.x + ${16 * j}u) * 4u; let ci = coff + gm * N + gn;`);
        if (v4) S.push(`        if (gn < N) { ${epi(o.epilogue, "C[ci / 4u]", `c${i * 4 + t}_${j}`)} } }`);
        else
          S.push(
            `        for (var u = 0u; u < 4u; u++) { if (gn + u < N) { ${epi(o.epilogue, "C[ci + u]", `c${i * 4 + t}_${j}[u]`)} } } }`,
          );
      }
      S.push(`    }`);
      S.push(`  }`);
    }
  S.push(`}`);
  return { code: S.join("\n"), workgroupSize: [16, 16, 1], tileM: BM, tileN: BN, needsSubgroups: false };
}

// ---------------------------------------------------------------------------------------------
// Picking a kernel. `cpu` = software adapter (llvmpipe/lavapipe, SwiftShader, WARP): e.g.
// adapter.info.vendor === "mesa" && /llvmpipe/.test(adapter.info.description) (or adapter.info.isFallbackAdapter).
// ---------------------------------------------------------------------------------------------
export type MatmulDevice = { cpu: boolean; subgroupSize: number | null };

export interface MatmulPlan {
  /** Pipeline-cache key: everything the generated code depends on. */
  key: string;
  tileM: number;
  tileN: number;
  wgsl: () => string;
}

/**
 * Chooses a kernel for the sizes and device without generating code (that happens once per key):
 * subgroup kernel on software adapters with a fixed subgroup size, register kernel on other software
 * adapters, shared-memory tiles on GPUs. `vec4` must already account for sizes, strides and offsets.
 */
export function matmulPlan(
  M: number,
  N: number,
  K: number,
  transA: boolean,
  transB: boolean,
  dev: MatmulDevice,
  vec4: boolean,
  epilogue?: Epilogue,
): MatmulPlan {
  return matmulPlanOf(M, N, K, transA, transB, dev, vec4, epilogue, false)!;
}

/** Whether a device has the dual-pair kernel: software adapters with a fixed subgroup size of 4–64. */
export const hasDualKernel = (dev: MatmulDevice): boolean =>
  dev.cpu && dev.subgroupSize !== null && dev.subgroupSize >= 4 && dev.subgroupSize <= 64;

/** The plan of a dual-pair product (C = A·B + A2·B2 in one kernel), or null where no kernel fuses it. */
export function matmulDualPlan(
  M: number,
  N: number,
  K: number,
  transA: boolean,
  transB: boolean,
  dev: MatmulDevice,
  vec4: boolean,
  epilogue?: Epilogue,
): MatmulPlan | null {
  return matmulPlanOf(M, N, K, transA, transB, dev, vec4, epilogue, true);
}

function matmulPlanOf(
  M: number,
  N: number,
  K: number,
  transA: boolean,
  transB: boolean,
  dev: MatmulDevice,
  vec4: boolean,
  epilogue: Epilogue | undefined,
  dual: boolean,
): MatmulPlan | null {
  const t = `${transA ? "T" : "N"}${transB ? "T" : "N"}${vec4 ? "4" : "1"}${epiKey(epilogue)}${dual ? "d" : ""}`;
  const sg = dev.subgroupSize;
  if (dual && !hasDualKernel(dev)) return null;
  if (!dev.cpu) {
    const tile = M * N >= 512 * 512 ? 128 : 64;
    return {
      key: `mm:tiled:${t}:${tile}`,
      tileM: tile,
      tileN: tile,
      wgsl: () => matmulTiledWgsl({ transA, transB, vec4, tile, kTile: 16, epilogue }).code,
    };
  }
  if (sg !== null && sg >= 4 && sg <= 64) {
    // Measured on lavapipe (LoRA-step shapes): 32-row tiles beat 64 for M >= 512 too; a short K
    // (a rank-16 product into a wide C) wants 8 columns per lane. Don't compute rows that don't exist.
    const rows = M > 16 ? 32 : M > 8 ? 16 : 8;
    const cols = K <= 32 && N >= 128 ? 8 : 4;
    return {
      key: `mm:sg:${t}:${rows}x${cols}:${sg}`,
      tileM: rows,
      tileN: sg * cols,
      wgsl: () => matmulWgsl({ transA, transB, vec4, variant: "subgroup", rows, colsPerLane: cols, subgroupSize: sg, epilogue, dual }).code,
    };
  }
  const wide = transA && !transB;
  const rows = wide ? 16 : 8;
  const kStep = wide ? 1 : vec4 && transB ? 4 : 1;
  return {
    key: `mm:reg:${t}:${rows}:${kStep}`,
    tileM: rows,
    tileN: 8 * 16,
    wgsl: () => matmulWgsl({ transA, transB, vec4, variant: "register", rows, colsPerLane: 16, kStep, epilogue }).code,
  };
}
