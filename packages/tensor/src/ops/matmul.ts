// Batched matmul C[..., M, N] = A[..., M, K] · B[..., K, N] with broadcast batch dims, transposed
// operands read in place (x·Wᵀ never copies W), 16-bit operands widened in-shader, and its gradient.
import { record } from "../autograd.js";
import { paramsDecl, type WebGPUBackend } from "../backend/webgpu.js";
import { ShapeError, fmtShape } from "../errors.js";
import { broadcastShapes, collapseDims, numel } from "../shape.js";
import { sameBackend, type Tensor } from "../tensor.js";
import { cpuData, emptyTensor, gpuOf, inputDecl, isGpu, MAIN, outputDecl, requireFloat } from "./kernel.js";
import { FAST_PARAMS, matmulPlan, matmulVec4Ok } from "./matmul-kernels.js";
import { copyToContiguous, transpose } from "./movement.js";
import { sumTo } from "./reduce.js";

/** How an operand's last two dims sit in memory: row-major as given, or the transpose of a row-major matrix. */
interface Operand {
  t: Tensor;
  trans: boolean;
  /** Element strides of the (broadcast) batch dims, 0 where broadcast. */
  batchStrides: number[];
  owned: boolean;
}

function asOperand(t: Tensor, batchShape: number[]): Operand {
  const r = t.rank;
  const [rows, cols] = [t.shape[r - 2], t.shape[r - 1]];
  const [sr, sc] = [t.strides[r - 2], t.strides[r - 1]];
  let src = t;
  let trans = false;
  let owned = false;
  const rowMajor = sc === 1 || cols === 1 ? sr === cols || rows === 1 : false;
  const colMajor = sr === 1 || rows === 1 ? sc === rows || cols === 1 : false;
  if (rowMajor) trans = false;
  else if (colMajor) trans = true;
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

function genericWgsl(a: Operand, b: Operand, batchRank: number, params: object): string {
  const loadA = a.trans ? "load_a(p.a_o + ab + k * p.M + m)" : "load_a(p.a_o + ab + m * p.K + k)";
  const loadB = b.trans ? "load_b(p.b_o + bb + n * p.K + k)" : "load_b(p.b_o + bb + k * p.N + n)";
  let batch = "var ab = 0u; var bb = 0u; var r = z;\n";
  for (let i = batchRank - 1; i >= 0; i--)
    batch += `  { let c = r % p.bd${i}; r = r / p.bd${i}; ab += c * p.as${i}; bb += c * p.bs${i}; }\n`;
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
  let cb = z * p.M * p.N;
  for (var i = 0u; i < ${TM}u; i++) {
    let m = row0 + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < ${TN}u; j++) { let n = col0 + j; if (n < p.N) { c[cb + m * p.N + n] = acc[i][j]; } }
  }
}`;
}

function matmulRaw(aIn: Tensor, bIn: Tensor, transA: boolean, transB: boolean): Tensor {
  const op = "matmul";
  const b0 = sameBackend(op, aIn, bIn);
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
  const out = emptyTensor(b0, [...batchShape, M, N]);
  const nb = numel(batchShape);
  if (out.size > 0) {
    if (isGpu(b0)) {
      const a = asOperand(A, batchShape);
      const b = asOperand(B, batchShape);
      if (!dispatchFast(b0, a, b, out, batchShape, M, N, K)) dispatchGeneric(b0, a, b, out, batchShape, M, N, K, nb);
      if (a.owned) a.t.dispose();
      if (b.owned) b.t.dispose();
    } else cpuMatmul(A, B, batchShape, M, N, K, cpuData(out));
  }
  if (A !== aIn) A.dispose();
  if (B !== bIn) B.dispose();
  return out;
}

/**
 * The tuned kernels (matmul-kernels.ts): f32 operands whose batch dims collapse to one stride each.
 * Returns false when they do not apply (16-bit operands, irregular batch strides).
 */
function dispatchFast(
  b0: WebGPUBackend,
  a: Operand,
  b: Operand,
  out: Tensor,
  batchShape: number[],
  M: number,
  N: number,
  K: number,
): boolean {
  if (a.t.dtype !== "f32" || b.t.dtype !== "f32") return false;
  const cStrides = batchShape.map((_, i) => numel(batchShape.slice(i + 1)) * M * N);
  const batch = collapseDims(batchShape, [a.batchStrides, b.batchStrides, cStrides]);
  if (batch.shape.length > 1) return false;
  const [strideA, strideB, strideC] = batch.shape.length ? batch.strides.map((st) => st[0]) : [0, 0, M * N];
  const nb = batch.shape[0] ?? 1;
  const aligned = [strideA, strideB, strideC, a.t.offset, b.t.offset].every((v) => v % 4 === 0);
  const vec4 = aligned && matmulVec4Ok(M, N, K, a.trans, b.trans);
  const plan = matmulPlan(M, N, a.trans, b.trans, { cpu: b0.traits.software, subgroupSize: b0.traits.subgroupSize }, vec4);
  const values = [M, N, K, nb, strideA, strideB, strideC, a.t.offset, b.t.offset];
  const params = { u: Object.fromEntries(FAST_PARAMS.map((f, i) => [f, values[i]])) };
  b0.dispatch({
    key: plan.key,
    params,
    inputs: [gpuOf(a.t), gpuOf(b.t)],
    outputs: [gpuOf(out)],
    grid: [Math.ceil(N / plan.tileN), Math.ceil(M / plan.tileM), nb],
    flops: 2 * M * N * K * nb,
    wgsl: plan.wgsl,
  });
  return true;
}

/** Any dtypes and batch layouts: a 4×4-per-invocation kernel with dtype-aware loaders. */
function dispatchGeneric(
  b0: WebGPUBackend,
  a: Operand,
  b: Operand,
  out: Tensor,
  batchShape: number[],
  M: number,
  N: number,
  K: number,
  nb: number,
): void {
  const u: Record<string, number> = { M, N, K, a_o: a.t.offset, b_o: b.t.offset };
  batchShape.forEach((d, i) => {
    u[`bd${i}`] = d;
    u[`as${i}`] = a.batchStrides[i];
    u[`bs${i}`] = b.batchStrides[i];
  });
  const params = { u };
  const key = `matmul:${a.t.dtype}${a.trans ? "T" : "N"}:${b.t.dtype}${b.trans ? "T" : "N"}:b${batchShape.length}`;
  b0.dispatch({
    key,
    params,
    inputs: [gpuOf(a.t), gpuOf(b.t)],
    outputs: [gpuOf(out)],
    grid: [Math.ceil(N / (TN * WGX)), Math.ceil(M / (TM * WGY)), nb],
    flops: 2 * M * N * K * nb,
    wgsl: () => genericWgsl(a, b, batchShape.length, params),
  });
}

/** float64 reference: plain triple loop over logical coordinates. */
function cpuMatmul(A: Tensor, B: Tensor, batchShape: number[], M: number, N: number, K: number, out: Float64Array): void {
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
        out[z * M * N + m * N + n] = s;
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
  return record(y, "matmul", [a, b], (g, needs) => {
    // C = op(A)·op(B): d op(A) = G·op(B)ᵀ, d op(B) = op(A)ᵀ·G, then undo the op and the broadcast.
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (needs[0]) {
      const full = transA ? matmulRaw(b, g, transB, true) : matmulRaw(g, b, false, !transB);
      da = a.rank === full.rank && full.shape.every((d, i) => d === a.shape[i]) ? full : reduceTo(full, a.shape);
    }
    if (needs[1]) {
      const full = transB ? matmulRaw(g, a, true, transA) : matmulRaw(a, g, !transA, false);
      db = b.rank === full.rank && full.shape.every((d, i) => d === b.shape[i]) ? full : reduceTo(full, b.shape);
    }
    return [da, db];
  });
}

function reduceTo(t: Tensor, shape: readonly number[]): Tensor {
  const r = sumTo(t, shape);
  t.dispose();
  return r;
}
