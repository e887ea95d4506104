// Batched matmul C[..., M, N] = A[..., M, K] · B[..., K, N] with broadcast batch dims, transposed
// operands read in place (x·Wᵀ never copies W), 16-bit operands widened in-shader, and its gradient.
import type { Binding, GpuBackend } from "../backend/backend.js";
import { bytesPerElement } from "../dtype.js";
import { DeviceError, fmtShape, ShapeError } from "../errors.js";
import { record } from "../graph.js";
import { broadcastShapes, collapseDims, numel } from "../shape.js";
import { emptyTensor, sameBackend, type Tensor } from "../tensor.js";
import { copyToContiguous } from "./copy.js";
import { bindSpan, cpuData, fitsBinding, inputDecl, isGpu, MAIN, outputDecl, paramsDecl, requireF32, requireFloat } from "./kernel.js";
import { FAST_PARAMS, hasDualKernel, matmulDualPlan, matmulPlan, matmulVec4Ok } from "./matmul-kernels.js";
import { transpose } from "./movement.js";
import { sumTo } from "./reduce.js";

/** How an operand's last two dims sit in memory: row-major as given, or the transpose of a row-major matrix. */
interface Operand {
  t: Tensor;
  trans: boolean;
  /** Element strides of the (broadcast) batch dims, 0 where broadcast. */
  batchStrides: number[];
  owned: boolean;
}

/** How the last two dims of `t` can be read in place: row-major, column-major (as a transpose), or not. */
function layoutOf(t: Tensor): "rows" | "cols" | null {
  const r = t.rank;
  const [rows, cols] = [t.shape[r - 2], t.shape[r - 1]];
  const [sr, sc] = [t.strides[r - 2], t.strides[r - 1]];
  if (sc === 1 || cols === 1 ? sr === cols || rows === 1 : false) return "rows";
  if (sr === 1 || rows === 1 ? sc === rows || cols === 1 : false) return "cols";
  return null;
}

function asOperand(t: Tensor, batchShape: number[]): Operand {
  const r = t.rank;
  let src = t;
  let trans = false;
  let owned = false;
  const layout = layoutOf(t);
  if (layout === "rows") trans = false;
  else if (layout === "cols") trans = true;
  else {
    src = copyToContiguous(t);
    owned = true;
  }
  // Batch dims: broadcast strides against the output batch shape.
  const lead = batchShape.length - (r - 2);
  const batchStrides = batchShape.map((_d, i) => {
    const j = i - lead;
    if (j < 0 || src.shape[j] === 1) return 0;
    return src.strides[j];
  });
  return { t: src, trans, batchStrides, owned };
}

export interface MatmulOptions {
  /** Use Aᵀ (swap A's last two axes) without materialising it. */
  transA?: boolean;
  transB?: boolean;
}

/** The tiled kernel: each invocation computes a TM×TN block; operands loaded through dtype-aware loaders. */
const TM = 4;
const TN = 4;
const WGX = 8;
const WGY = 8;

function genericWgsl(a: Operand, b: Operand, batchRank: number, params: object, alpha: boolean, accumulate: boolean): string {
  const loadA = a.trans ? "load_a(p.a_o + ab + k * p.lda + m)" : "load_a(p.a_o + ab + m * p.lda + k)";
  const loadB = b.trans ? "load_b(p.b_o + bb + n * p.ldb + k)" : "load_b(p.b_o + bb + k * p.ldb + n)";
  let batch = "var ab = 0u; var bb = 0u; var r = z;\n";
  for (let i = batchRank - 1; i >= 0; i--)
    batch += `  { let c = r % p.bd${i}; r = r / p.bd${i}; ab += c * p.as${i}; bb += c * p.bs${i}; }\n`;
  const v = alpha ? "p.alpha * acc[i][j]" : "acc[i][j]";
  const store = accumulate ? `c[ci] = c[ci] + ${v};` : `c[ci] = ${v};`;
  return `${paramsDecl(params as never)}${inputDecl(1, "a", a.t.dtype)}${inputDecl(2, "b", b.t.dtype)}${outputDecl(3, "c")}
${MAIN(`${WGX}, ${WGY}, 1`)} {
  let z = wid.z;
  ${batch}
  let row0 = (wid.y * ${WGY}u + lid.y) * ${TM}u;
  let col0 = (wid.x * ${WGX}u + lid.x) * ${TN}u;
  var acc: array<array<f32, ${TN}>, ${TM}>;
  for (var k = 0u; k < p.K; k++) {
    var av: array<f32, ${TM}>;
    var bv: array<f32, ${TN}>;
    for (var i = 0u; i < ${TM}u; i++) { let m = row0 + i; av[i] = select(0.0, ${loadA}, m < p.M); }
    for (var j = 0u; j < ${TN}u; j++) { let n = col0 + j; bv[j] = select(0.0, ${loadB}, n < p.N); }
    for (var i = 0u; i < ${TM}u; i++) { for (var j = 0u; j < ${TN}u; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); } }
  }
  let cb = p.c_o + z * p.M * p.N;
  for (var i = 0u; i < ${TM}u; i++) {
    let m = row0 + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < ${TN}u; j++) { let n = col0 + j; if (n < p.N) { let ci = cb + m * p.ldc + n; ${store} } }
  }
}`;
}

/** alpha·op(A)·op(B), written to C or added to it. */
interface Epi {
  alpha: number;
  accumulate: boolean;
}

/** Shapes of op(a)·op(b): the transposed views, M, N, K and the broadcast batch shape. */
function plan(op: string, aIn: Tensor, bIn: Tensor, transA: boolean, transB: boolean) {
  sameBackend(op, aIn, bIn);
  requireFloat(op, aIn, bIn);
  if (aIn.rank < 2 || bIn.rank < 2)
    throw new ShapeError(`${op}: operands must have rank >= 2, got ${fmtShape(aIn.shape)} and ${fmtShape(bIn.shape)}`);
  const A = transA ? transpose(aIn) : aIn;
  const B = transB ? transpose(bIn) : bIn;
  const M = A.shape[A.rank - 2];
  const K = A.shape[A.rank - 1];
  const N = B.shape[B.rank - 1];
  if (B.shape[B.rank - 2] !== K)
    throw new ShapeError(
      `${op}: inner dimensions differ: ${fmtShape(A.shape)} · ${fmtShape(B.shape)} (${K} vs ` +
        `${B.shape[B.rank - 2]})${transA || transB ? " after transposes" : ""}`,
    );
  const batchShape = broadcastShapes(op, A.shape.slice(0, -2), B.shape.slice(0, -2));
  return { A, B, M, N, K, batchShape };
}

/**
 * C = alpha·A·B (+ C when accumulating) for views A [.., M, K], B [.., K, N] and a contiguous C
 * [.., M, N]: the tuned kernels for f32, the generic one for 16-bit operands and irregular batches,
 * windows for operands larger than one binding.
 */
function matmulCore(A: Tensor, B: Tensor, out: Tensor, batchShape: number[], M: number, N: number, K: number, e: Epi): void {
  if (out.size === 0) return;
  const b0 = out.backend;
  if (!isGpu(b0)) {
    cpuMatmul(A, B, batchShape, M, N, K, cpuData(out), out.offset, e);
    return;
  }
  const a = asOperand(A, batchShape);
  const b = asOperand(B, batchShape);
  const big = ![a.t, b.t, out].every((t) => fitsBinding(b0, t.storage));
  if (big) dispatchWindowed(b0, a, b, out, batchShape, M, N, K, e);
  else if (!dispatchFast(b0, a, b, out, batchShape, M, N, K, e)) dispatchGeneric(b0, a, b, out, batchShape, M, N, K, e);
  if (a.owned) a.t.dispose();
  if (b.owned) b.t.dispose();
}

/** alpha·op(a)·op(b) into a new tensor, no autograd (for backward rules and fused ops). */
export function matmulRaw(aIn: Tensor, bIn: Tensor, transA: boolean, transB: boolean, alpha = 1): Tensor {
  const { A, B, M, N, K, batchShape } = plan("matmul", aIn, bIn, transA, transB);
  const out = emptyTensor(aIn.backend, [...batchShape, M, N]);
  matmulCore(A, B, out, batchShape, M, N, K, { alpha, accumulate: false });
  if (A !== aIn) A.dispose();
  if (B !== bIn) B.dispose();
  return out;
}

/**
 * c += alpha·op(a)·op(b) in place, no autograd (c: contiguous f32 of the product's shape). For op
 * authors fusing an epilogue: a LoRA delta added into the base output, a gradient fan-in.
 */
export function matmulAccumulate(c: Tensor, a: Tensor, b: Tensor, opts: MatmulOptions & { alpha?: number } = {}): void {
  const { A, B, M, N, K, batchShape } = plan("matmulAccumulate", a, b, !!opts.transA, !!opts.transB);
  sameBackend("matmulAccumulate", c, a);
  const want = [...batchShape, M, N];
  if (c.dtype !== "f32" || !c.isContiguous || c.shape.length !== want.length || c.shape.some((d, i) => d !== want[i]))
    throw new ShapeError(`matmulAccumulate: the target must be a contiguous f32 ${fmtShape(want)}, got ${c.dtype} ${fmtShape(c.shape)}`);
  matmulCore(A, B, c, batchShape, M, N, K, { alpha: opts.alpha ?? 1, accumulate: true });
  if (A !== a) A.dispose();
  if (B !== b) B.dispose();
}

/**
 * The tuned kernels (matmul-kernels.ts): f32 operands whose batch dims collapse to one stride each.
 * Returns false when they do not apply (16-bit operands, irregular batch strides).
 */
function dispatchFast(
  b0: GpuBackend,
  a: Operand,
  b: Operand,
  out: Tensor,
  batchShape: number[],
  M: number,
  N: number,
  K: number,
  e: Epi,
): boolean {
  if (a.t.dtype !== "f32" || b.t.dtype !== "f32") return false;
  const cStrides = batchShape.map((_, i) => numel(batchShape.slice(i + 1)) * M * N);
  const batch = collapseDims(batchShape, [a.batchStrides, b.batchStrides, cStrides]);
  if (batch.shape.length > 1) return false;
  const [strideA, strideB, strideC] = batch.shape.length ? batch.strides.map((st) => st[0]) : [0, 0, M * N];
  const nb = batch.shape[0] ?? 1;
  const aligned = [strideA, strideB, strideC, a.t.offset, b.t.offset, out.offset].every((v) => v % 4 === 0);
  const vec4 = aligned && matmulVec4Ok(M, N, K, a.trans, b.trans);
  const dev = { cpu: b0.traits.software, subgroupSize: b0.traits.subgroupSize };
  const kernel = matmulPlan(M, N, K, a.trans, b.trans, dev, vec4, { alpha: e.alpha !== 1, accumulate: e.accumulate });
  const values = [M, N, K, nb, strideA, strideB, strideC, a.t.offset, b.t.offset, out.offset, 0, 0, 0];
  const params = { u: Object.fromEntries(FAST_PARAMS.map((f, i) => [f, values[i]])), f: { alpha: e.alpha } };
  b0.dispatch({
    key: kernel.key,
    params,
    inputs: [a.t.storage, b.t.storage],
    outputs: [out.storage],
    grid: [Math.ceil(N / kernel.tileN), Math.ceil(M / kernel.tileM), nb],
    flops: 2 * M * N * K * nb,
    wgsl: kernel.wgsl,
  });
  return true;
}

/** Any dtypes and batch layouts: a 4×4-per-invocation kernel with dtype-aware loaders. */
function dispatchGeneric(
  b0: GpuBackend,
  a: Operand,
  b: Operand,
  out: Tensor,
  batchShape: number[],
  M: number,
  N: number,
  K: number,
  e: Epi,
): void {
  const nb = numel(batchShape);
  const u: Record<string, number> = {
    M,
    N,
    K,
    a_o: a.t.offset,
    b_o: b.t.offset,
    c_o: out.offset,
    lda: a.trans ? M : K,
    ldb: b.trans ? K : N,
    ldc: N,
  };
  batchShape.forEach((d, i) => {
    u[`bd${i}`] = d;
    u[`as${i}`] = a.batchStrides[i];
    u[`bs${i}`] = b.batchStrides[i];
  });
  genericDispatch(b0, a, b, [a.t.storage, b.t.storage, out.storage], u, batchShape.length, nb, e.alpha, e.accumulate);
}

/** One dispatch of the generic kernel over [M, N] (from `u`) × `nb` batches, with the given bindings. */
function genericDispatch(
  b0: GpuBackend,
  a: Operand,
  b: Operand,
  [ab, bb, cb]: Binding[],
  u: Record<string, number>,
  batchRank: number,
  nb: number,
  alpha: number,
  accumulate: boolean,
): void {
  const params = { u, f: { alpha } };
  b0.dispatch({
    key:
      `matmul:${a.t.dtype}${a.trans ? "T" : "N"}:${b.t.dtype}${b.trans ? "T" : "N"}:b${batchRank}` +
      `${alpha !== 1 ? ":alpha" : ""}${accumulate ? ":acc" : ""}`,
    params,
    inputs: [ab, bb],
    outputs: [cb],
    grid: [Math.ceil(u.N / (TN * WGX)), Math.ceil(u.M / (TM * WGY)), nb],
    flops: 2 * u.M * u.N * u.K * nb,
    wgsl: () => genericWgsl(a, b, batchRank, params, alpha !== 1, accumulate),
  });
}

/**
 * Operands or output larger than one storage binding (an LM head over a 256k vocabulary, its
 * gradient): C is computed in blocks [m0, m0 + mc) × [n0, n0 + nc), each summed over k-blocks
 * (the first block writes, the others accumulate), with every operand bound as a window.
 */
function dispatchWindowed(
  b0: GpuBackend,
  a: Operand,
  b: Operand,
  out: Tensor,
  batchShape: number[],
  M: number,
  N: number,
  K: number,
  e: Epi,
): void {
  if (numel(batchShape) !== 1)
    throw new DeviceError(
      `matmul: batched operands larger than maxStorageBufferBindingSize (${b0.limits.maxStorageBufferBindingSize} bytes) ` +
        "are not supported; " +
        "loop over the batch",
    );
  const room = b0.limits.maxStorageBufferBindingSize - 2 * Math.max(4, b0.limits.minStorageBufferOffsetAlignment);
  // Elements each window spans for block sizes (mc, nc, kc).
  const spanA = (mc: number, kc: number) => (a.trans ? (kc - 1) * M + mc : (mc - 1) * K + kc);
  const spanB = (kc: number, nc: number) => (b.trans ? (nc - 1) * K + kc : (kc - 1) * N + nc);
  const spanC = (mc: number, nc: number) => (mc - 1) * N + nc;
  const [ea, eb] = [bytesPerElement(a.t.dtype), bytesPerElement(b.t.dtype)];
  let [mc, nc, kc] = [M, N, K];
  const half = (v: number) => Math.ceil(v / 2);
  for (let guard = 0; guard < 200; guard++) {
    // Shrink the block dimension that sets the operand's span (its row count), then the other one.
    if (spanA(mc, kc) * ea > room) {
      const rowsAreK = a.trans;
      if ((rowsAreK ? kc : mc) > 1) rowsAreK ? (kc = half(kc)) : (mc = half(mc));
      else rowsAreK ? (mc = half(mc)) : (kc = half(kc));
    } else if (spanB(kc, nc) * eb > room) {
      const rowsAreN = b.trans;
      if ((rowsAreN ? nc : kc) > 1) rowsAreN ? (nc = half(nc)) : (kc = half(kc));
      else rowsAreN ? (kc = half(kc)) : (nc = half(nc));
    } else if (spanC(mc, nc) * 4 > room) {
      if (mc > 1) mc = half(mc);
      else nc = half(nc);
    } else break;
  }
  for (let m0 = 0; m0 < M; m0 += mc) {
    const mn = Math.min(mc, M - m0);
    for (let n0 = 0; n0 < N; n0 += nc) {
      const nn = Math.min(nc, N - n0);
      const cw = bindSpan(b0, out.storage, out.offset + m0 * N + n0, spanC(mn, nn));
      for (let k0 = 0; k0 < K; k0 += kc) {
        const kn = Math.min(kc, K - k0);
        const aw = bindSpan(b0, a.t.storage, a.t.offset + (a.trans ? k0 * M + m0 : m0 * K + k0), spanA(mn, kn));
        const bw = bindSpan(b0, b.t.storage, b.t.offset + (b.trans ? n0 * K + k0 : k0 * N + n0), spanB(kn, nn));
        const u = { M: mn, N: nn, K: kn, a_o: aw.base, b_o: bw.base, c_o: cw.base, lda: a.trans ? M : K, ldb: b.trans ? K : N, ldc: N };
        genericDispatch(b0, a, b, [aw.binding, bw.binding, cw.binding], u, 0, 1, e.alpha, e.accumulate || k0 > 0);
      }
    }
  }
}

/** float64 reference: plain triple loop over logical coordinates. */
function cpuMatmul(
  A: Tensor,
  B: Tensor,
  batchShape: number[],
  M: number,
  N: number,
  K: number,
  out: Float64Array,
  cOff: number,
  e: Epi,
): void {
  const ad = cpuData(A);
  const bd = cpuData(B);
  const nb = numel(batchShape);
  const batchOffset = (t: Tensor, z: number) => {
    let off = t.offset;
    const lead = batchShape.length - (t.rank - 2);
    for (let i = batchShape.length - 1; i >= 0; i--) {
      const c = z % batchShape[i];
      z = Math.floor(z / batchShape[i]);
      const j = i - lead;
      if (j >= 0 && t.shape[j] !== 1) off += c * t.strides[j];
    }
    return off;
  };
  const [ar, ac] = [A.strides[A.rank - 2], A.strides[A.rank - 1]];
  const [br, bc] = [B.strides[B.rank - 2], B.strides[B.rank - 1]];
  for (let z = 0; z < nb; z++) {
    const ao = batchOffset(A, z);
    const bo = batchOffset(B, z);
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += ad[ao + m * ar + k * ac] * bd[bo + k * br + n * bc];
        const i = cOff + z * M * N + m * N + n;
        out[i] = (e.accumulate ? out[i] : 0) + e.alpha * s;
      }
  }
}

/**
 * Matrix product over the last two axes with broadcast batch axes (like torch.matmul for rank >= 2).
 * `transA`/`transB` use the transposed operand without a copy, e.g. `matmul(x, w, { transB: true })` = x·Wᵀ.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  const y = matmulRaw(a, b, transA, transB);
  // dA reads B and dB reads A: hold an operand only when the other one wants a gradient.
  const holdA = b.requiresGrad;
  const holdB = a.requiresGrad;
  return record(
    y,
    "matmul",
    [a, b],
    (gIn, needs, held) => {
      const sa = holdA ? held[0] : null;
      const sb = holdB ? held[holdA ? 1 : 0] : null;
      // One packed copy of a strided upstream gradient serves both products (asOperand would copy it twice).
      const g = needs[0] && needs[1] && !layoutOf(gIn) ? copyToContiguous(gIn) : gIn;
      // C = op(A)·op(B): d op(A) = G·op(B)ᵀ, d op(B) = op(A)ᵀ·G, then undo the op and the broadcast.
      const da = needs[0] && sb ? fit(transA ? matmulRaw(sb, g, transB, true) : matmulRaw(g, sb, false, !transB), a.shape) : null;
      const db = needs[1] && sa ? fit(transB ? matmulRaw(g, sa, true, transA) : matmulRaw(sa, g, !transA, false), b.shape) : null;
      if (g !== gIn) g.dispose();
      return [da, db];
    },
    [...(holdA ? [a] : []), ...(holdB ? [b] : [])],
  );
}

/**
 * out = alpha·(op(a1)·op(b1) + op(a2)·op(b2)) (+ out when accumulating), no autograd: two products
 * with the same M, N and layouts summed in one kernel where the device has one (the subgroup kernel;
 * elsewhere two dispatches, the second accumulating). The fused LoRA layer's base + adapter product.
 */
export function matmulDual(
  out: Tensor,
  [a1, b1]: [Tensor, Tensor],
  [a2, b2]: [Tensor, Tensor],
  opts: MatmulOptions & { alpha?: number; accumulate?: boolean } = {},
): void {
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  const alpha = opts.alpha ?? 1;
  const p1 = plan("matmulDual", a1, b1, transA, transB);
  const p2 = plan("matmulDual", a2, b2, transA, transB);
  if (p1.M !== p2.M || p1.N !== p2.N || p1.batchShape.length || p2.batchShape.length)
    throw new ShapeError(`matmulDual: both products must be 2-D with the same [M, N], got [${p1.M},${p1.N}] and [${p2.M},${p2.N}]`);
  const { M, N } = p1;
  if (out.dtype !== "f32" || !out.isContiguous || out.rank !== 2 || out.shape[0] !== M || out.shape[1] !== N)
    throw new ShapeError(`matmulDual: the target must be a contiguous f32 [${M},${N}], got ${out.dtype} ${fmtShape(out.shape)}`);
  const b0 = out.backend;
  const fused = isGpu(b0) && dispatchDual(b0, p1.A, p1.B, p2.A, p2.B, out, M, N, p1.K, p2.K, { alpha, accumulate: !!opts.accumulate });
  if (!fused) {
    matmulCore(p1.A, p1.B, out, [], M, N, p1.K, { alpha, accumulate: !!opts.accumulate });
    matmulCore(p2.A, p2.B, out, [], M, N, p2.K, { alpha, accumulate: true });
  }
  for (const [v, orig] of [
    [p1.A, a1],
    [p1.B, b1],
    [p2.A, a2],
    [p2.B, b2],
  ] as const)
    if (v !== orig) v.dispose();
}

/** The one-kernel dual product; false where it does not apply (16-bit operands, other layouts, big tensors). */
function dispatchDual(
  b0: GpuBackend,
  A1: Tensor,
  B1: Tensor,
  A2: Tensor,
  B2: Tensor,
  out: Tensor,
  M: number,
  N: number,
  K1: number,
  K2: number,
  e: Epi,
): boolean {
  // Where no kernel fuses the pair (GPUs), give up before any operand is checked or copied.
  const dev = { cpu: b0.traits.software, subgroupSize: b0.traits.subgroupSize };
  if (!hasDualKernel(dev)) return false;
  const ops = [A1, B1, A2, B2];
  if (ops.some((t) => t.dtype !== "f32" || !fitsBinding(b0, t.storage)) || !fitsBinding(b0, out.storage)) return false;
  const [a1, b1, a2, b2] = ops.map((t) => asOperand(t, []));
  try {
    if (a1.trans !== a2.trans || b1.trans !== b2.trans) return false;
    const aligned = [a1, b1, a2, b2].every((o) => o.t.offset % 4 === 0) && out.offset % 4 === 0;
    const vec4 = aligned && matmulVec4Ok(M, N, K1, a1.trans, b1.trans) && matmulVec4Ok(M, N, K2, a1.trans, b1.trans);
    const kernel = matmulDualPlan(M, N, K1 + K2, a1.trans, b1.trans, dev, vec4, { alpha: e.alpha !== 1, accumulate: e.accumulate });
    if (!kernel) return false;
    const values = [M, N, K1, 1, 0, 0, 0, a1.t.offset, b1.t.offset, out.offset, K2, a2.t.offset, b2.t.offset];
    const params = { u: Object.fromEntries(FAST_PARAMS.map((f, i) => [f, values[i]])), f: { alpha: e.alpha } };
    b0.dispatch({
      key: kernel.key,
      params,
      inputs: [a1.t.storage, b1.t.storage, a2.t.storage, b2.t.storage],
      outputs: [out.storage],
      grid: [Math.ceil(N / kernel.tileN), Math.ceil(M / kernel.tileM), 1],
      flops: 2 * M * N * (K1 + K2),
      wgsl: kernel.wgsl,
    });
    return true;
  } finally {
    for (const o of [a1, b1, a2, b2]) if (o.owned) o.t.dispose();
  }
}

export interface AddmmOptions extends MatmulOptions {
  /** Scale of the product (default 1). */
  alpha?: number;
  /**
   * Reuse c's storage for the result when nothing else holds it (c is then consumed: dispose it and
   * read only the result). The fused LoRA layer adds its delta into the base output this way.
   */
  donate?: boolean;
}

/**
 * c + alpha·op(a)·op(b) in one kernel (the product is accumulated into the result in the matmul's
 * store, no separate add), with its gradient: dc = g, da and db as for matmul, scaled by alpha.
 */
export function addmm(c: Tensor, a: Tensor, b: Tensor, opts: AddmmOptions = {}): Tensor {
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  const alpha = opts.alpha ?? 1;
  sameBackend("addmm", c, a, b);
  requireF32("addmm", c);
  const reuse = !!opts.donate && c.storage.refs === 1 && c.isContiguous;
  const out = reuse ? c.viewAs(c.shape) : copyToContiguous(c);
  matmulAccumulate(out, a, b, { transA, transB, alpha });
  const holdA = b.requiresGrad;
  const holdB = a.requiresGrad;
  return record(
    out,
    "addmm",
    [c, a, b],
    (g, needs, held) => {
      const sa = holdA ? held[0] : null;
      const sb = holdB ? held[holdA ? 1 : 0] : null;
      const dc = needs[0] ? g.viewAs(g.shape, g.strides, g.offset) : null;
      const da =
        needs[1] && sb ? fit(transA ? matmulRaw(sb, g, transB, true, alpha) : matmulRaw(g, sb, false, !transB, alpha), a.shape) : null;
      const db =
        needs[2] && sa ? fit(transB ? matmulRaw(g, sa, true, transA, alpha) : matmulRaw(sa, g, !transA, false, alpha), b.shape) : null;
      return [dc, da, db];
    },
    [...(holdA ? [a] : []), ...(holdB ? [b] : [])],
  );
}

/** A gradient of a broadcast operand summed back to its shape. */
function fit(full: Tensor, shape: readonly number[]): Tensor {
  return full.rank === shape.length && full.shape.every((d, i) => d === shape[i]) ? full : reduceTo(full, shape);
}

function reduceTo(t: Tensor, shape: readonly number[]): Tensor {
  const r = sumTo(t, shape);
  t.dispose();
  return r;
}
