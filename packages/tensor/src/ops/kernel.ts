// Helpers every op file shares: WGSL declarations and typed loads for each dtype (16-bit data is
// widened in-shader), strided index arithmetic for WGSL and for the CPU oracle, and backend checks.
import type { Backend } from "../backend/backend.js";
import type { CpuStorage } from "../backend/cpu.js";
import type { GpuStorage, WebGPUBackend } from "../backend/webgpu.js";
import type { DType } from "../dtype.js";
import { DTypeError, fmtShape } from "../errors.js";
import { contiguousStrides, numel } from "../shape.js";
import { emptyTensor, Tensor } from "../tensor.js";

export const isGpu = (b: Backend): b is WebGPUBackend => b.kind === "webgpu";
export const gpuOf = (t: Tensor): GpuStorage => t.storage as GpuStorage;
export const cpuData = (t: Tensor): Float64Array => (t.storage as CpuStorage).data;

/** WGSL element type of a storage binding for a dtype (16-bit data is packed two per u32). */
export const wgslArray = (d: DType): string => (d === "f32" ? "array<f32>" : d === "i32" ? "array<i32>" : "array<u32>");

/** A read-only storage binding plus `fn load_<name>(i: u32) -> f32` (or i32 for i32 data). */
export function inputDecl(binding: number, name: string, d: DType): string {
  const decl = `@group(0) @binding(${binding}) var<storage, read> ${name}: ${wgslArray(d)};\n`;
  switch (d) {
    case "f32":
      return `${decl}fn load_${name}(i: u32) -> f32 { return ${name}[i]; }\n`;
    case "i32":
      return `${decl}fn load_${name}(i: u32) -> i32 { return ${name}[i]; }\n`;
    case "bf16":
      return `${decl}fn load_${name}(i: u32) -> f32 { return bitcast<f32>(((${name}[i >> 1u] >> ((i & 1u) << 4u)) & 0xffffu) << 16u); }\n`;
    case "f16":
      return `${decl}fn load_${name}(i: u32) -> f32 { return unpack2x16float(${name}[i >> 1u])[i & 1u]; }\n`;
  }
}

export function outputDecl(binding: number, name: string, d: "f32" | "i32" = "f32"): string {
  return `@group(0) @binding(${binding}) var<storage, read_write> ${name}: array<${d}>;\n`;
}

/** Requires float (f32/f16/bf16) inputs for a math op. */
export function requireFloat(op: string, ...ts: Tensor[]): void {
  for (const t of ts)
    if (t.dtype === "i32")
      throw new DTypeError(`${op}: expected a float tensor, got i32 ${fmtShape(t.shape)}; cast it with cast(x, "f32")`);
}

/** Requires f32 (trainable compute dtype), e.g. for ops whose outputs are written in place. */
export function requireF32(op: string, ...ts: Tensor[]): void {
  for (const t of ts)
    if (t.dtype !== "f32")
      throw new DTypeError(`${op}: expected an f32 tensor, got ${t.dtype} ${fmtShape(t.shape)}; cast it with cast(x, "f32")`);
}

/**
 * WGSL statements computing `<name>_off` for element `idx` of a row-major `shape` read through
 * `strides` from uniform fields `<name>_o` (offset) and `<name>_s<k>` (strides), dims `d<k>`.
 */
export function stridedIndexWgsl(name: string, rank: number, idx: string): string {
  if (rank === 0) return `let ${name}_off = p.${name}_o;\n`;
  let s = `var ${name}_off = p.${name}_o;\n{ var r = ${idx};\n`;
  for (let k = rank - 1; k >= 1; k--) s += `  ${name}_off += (r % p.d${k}) * p.${name}_s${k}; r = r / p.d${k};\n`;
  s += `  ${name}_off += r * p.${name}_s0; }\n`;
  return s;
}

/** Uniform fields for `stridedIndexWgsl`: dims are shared, offset + strides per operand. */
export function stridedParams(name: string, offset: number, strides: readonly number[], into: Record<string, number>): void {
  into[`${name}_o`] = offset;
  strides.forEach((s, k) => (into[`${name}_s${k}`] = s));
}

export function dimParams(shape: readonly number[], into: Record<string, number>): void {
  shape.forEach((d, k) => (into[`d${k}`] = d));
}

/** Element offsets of a strided view in logical order (CPU oracle). */
export function stridedOffsets(shape: readonly number[], strides: readonly number[], offset: number): Int32Array | Float64Array {
  const n = numel(shape);
  const out = n < 2 ** 31 ? new Int32Array(n) : new Float64Array(n);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let off = offset;
  for (let i = 0; i < n; i++) {
    out[i] = off;
    for (let k = rank - 1; k >= 0; k--) {
      idx[k]++;
      off += strides[k];
      if (idx[k] < shape[k]) break;
      off -= strides[k] * shape[k];
      idx[k] = 0;
    }
  }
  return out;
}

/** Logical-order float64 values of any CPU tensor (a copy when it is a strided view). */
export function cpuValues(t: Tensor): Float64Array {
  const d = cpuData(t);
  if (t.isContiguous) return d.subarray(t.offset, t.offset + t.size);
  const offs = stridedOffsets(t.shape, t.strides, t.offset);
  const out = new Float64Array(offs.length);
  for (let i = 0; i < offs.length; i++) out[i] = d[offs[i]];
  return out;
}

export { contiguousStrides, emptyTensor, Tensor };

/** Workgroups needed for `n` invocations at `wg` per group. */
export const groups = (n: number, wg: number): number => Math.ceil(n / wg);

/** Standard compute entry point header with the builtins our kernels use. */
export const MAIN = (wg: number | string) =>
  `@compute @workgroup_size(${wg}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: ` +
  `vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>)`;

/**
 * WGSL workgroup reductions over `wg` invocations: `wg_sum(v, lid)` and `wg_max(v, lid)` return
 * the reduced value (f32, or a vector type such as vec2<f32>) to every invocation. Call them in
 * uniform control flow.
 */
export function wgReduceLib(wg: number, type = "f32"): string {
  const fn = (name: string, comb: string) => `fn ${name}(v: ${type}, l: u32) -> ${type} {
  red[l] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (l < s) { red[l] = ${comb}; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;
  return `var<workgroup> red: array<${type}, ${wg}>;\n${fn("wg_sum", "red[l] + red[l + s]")}${fn("wg_max", "max(red[l], red[l + s])")}`;
}

/** Threads per workgroup for row kernels: enough lanes for long rows, few for short ones. */
export const rowWorkgroup = (cols: number): number => (cols >= 1024 ? 256 : cols >= 128 ? 64 : 32);

/** Validates a last-axis op: returns rows and cols of a contiguous copy (or `x` itself). */
export function rowsOf(x: Tensor): { rows: number; cols: number } {
  const cols = x.shape[x.rank - 1] ?? 1;
  return { rows: cols === 0 ? 0 : x.size / cols, cols };
}
