// Helpers every op file shares: WGSL declarations and typed loads per dtype (16-bit data widened
// in-shader), strided indexing, workgroup reductions, the row max/Σexp pass, and binding windows.
import type { Backend, Binding, GpuBackend, Storage } from "../backend/backend.js";
import type { CpuStorage } from "../backend/cpu.js";
import { bytesPerElement, type DType, storageBytes } from "../dtype.js";
import { DeviceError, DTypeError, fmtShape } from "../errors.js";
import { stridedOffsets } from "../shape.js";
import type { Tensor } from "../tensor.js";

export { grid1d, LINEAR_WG, paramsDecl, reportWgsl } from "../backend/wgsl.js";

export const isGpu = (b: Backend): b is GpuBackend => b.kind === "webgpu";
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
 * WGSL statements adding to `target` the offset of element `idx` of a row-major shape read through
 * strides: dims are uniform fields `<dims><k>`, strides `<name>_s<k>`. Rank 0 adds nothing.
 */
export function stridedOffsetWgsl(target: string, name: string, rank: number, idx: string, dims = "d"): string {
  if (rank === 0) return "";
  let s = `{ var r = ${idx};\n`;
  for (let k = rank - 1; k >= 1; k--) s += `  ${target} += (r % p.${dims}${k}) * p.${name}_s${k}; r = r / p.${dims}${k};\n`;
  return `${s}  ${target} += r * p.${name}_s0; }\n`;
}

/** `var <name>_off` = offset field `<name>_o` plus the strided offset of element `idx` (dims `d<k>`). */
export const stridedIndexWgsl = (name: string, rank: number, idx: string): string =>
  `var ${name}_off = p.${name}_o;\n${stridedOffsetWgsl(`${name}_off`, name, rank, idx)}`;

/** Uniform fields for `stridedIndexWgsl`: dims are shared, offset + strides per operand. */
export function stridedParams(name: string, offset: number, strides: readonly number[], into: Record<string, number>): void {
  into[`${name}_o`] = offset;
  strides.forEach((s, k) => (into[`${name}_s${k}`] = s));
}

export function dimParams(shape: readonly number[], into: Record<string, number>, prefix = "d"): void {
  shape.forEach((d, k) => (into[`${prefix}${k}`] = d));
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

/** Workgroups needed for `n` invocations at `wg` per group. */
export const groups = (n: number, wg: number): number => Math.ceil(n / wg);

/** Standard compute entry point header with the builtins our kernels use. */
export const MAIN = (wg: number | string) =>
  `@compute @workgroup_size(${wg}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, ` +
  "@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>)";

/**
 * WGSL workgroup reductions over `wg` invocations: `wg_sum(v, lid)` and `wg_max(v, lid)` return
 * the reduced value (f32, or a vector type such as vec2<f32>) to every invocation. Call them in
 * uniform control flow. With `subgroup` (the workgroup is exactly one subgroup) they are single
 * subgroup operations: no workgroup memory, no barriers (each costs a context switch on lavapipe).
 */
export function wgReduceLib(wg: number, type = "f32", subgroup = false): string {
  if (subgroup)
    return `enable subgroups;
fn wg_sum(v: ${type}, l: u32) -> ${type} { return subgroupAdd(v); }
fn wg_max(v: ${type}, l: u32) -> ${type} { return subgroupMax(v); }
`;
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

/**
 * The lanes that own one row in a row kernel, and their reduction library: on software adapters with
 * a fixed subgroup size, one subgroup (subgroup reductions); elsewhere `rowWorkgroup` lanes (tree).
 */
export function rowLanes(b: GpuBackend, cols: number): { wg: number; lib: string; key: string } {
  const sg = b.traits.software ? b.traits.subgroupSize : null;
  if (sg) return { wg: sg, lib: wgReduceLib(sg, "f32", true), key: `sg${sg}` };
  const wg = rowWorkgroup(cols);
  return { wg, lib: wgReduceLib(wg), key: `${wg}` };
}

/** `t`'s storage under another (contiguous) shape; `t` itself is disposed. */
export function reshaped(t: Tensor, shape: readonly number[]): Tensor {
  const v = t.viewAs(shape);
  t.dispose();
  return v;
}

/** Rows and columns of a last-axis op. */
export function rowsOf(x: Tensor): { rows: number; cols: number } {
  const cols = x.shape[x.rank - 1] ?? 1;
  return { rows: cols === 0 ? 0 : x.size / cols, cols };
}

// ---- the row max / Σexp pass (softmax, log-softmax, cross-entropy, attention, KL/entropy) --------

export interface RowPassWgsl {
  /** Lanes of the workgroup that owns one row (needs `wgReduceLib(wg)`; the lane is `lid.x`). */
  wg: number;
  /** WGSL expression of the row length. */
  cols: string;
  /** WGSL expression of element `j` of the row (f32). */
  value: (j: string) => string;
  /** Optional WGSL condition: element `j` takes part (masked attention). */
  visible?: (j: string) => string;
}

/**
 * WGSL statements defining `row_max` (−FLT_MAX for a row with no visible element) and `row_sum`
 * = Σ exp(v − row_max) over the row, so logsumexp = row_max + log(row_sum). Uniform control flow.
 */
export function rowMaxSumExpWgsl(o: RowPassWgsl): string {
  const vis = (j: string, body: string) => (o.visible ? `if (${o.visible(j)}) { ${body} }` : body);
  return `var pass_m = -3.4028234663852886e38;
  for (var j = lid.x; j < ${o.cols}; j += ${o.wg}u) { ${vis("j", `pass_m = max(pass_m, ${o.value("j")});`)} }
  let row_max = wg_max(pass_m, lid.x);
  var pass_s = 0.0;
  for (var j = lid.x; j < ${o.cols}; j += ${o.wg}u) { ${vis("j", `pass_s += exp(${o.value("j")} - row_max);`)} }
  let row_sum = wg_sum(pass_s, lid.x);
`;
}

/** The oracle of `rowMaxSumExpWgsl` in float64: max (−Infinity when nothing is visible) and Σ exp(v − max). */
export function rowMaxSumExp(cols: number, value: (j: number) => number, visible?: (j: number) => boolean): { max: number; sum: number } {
  let max = -Infinity;
  for (let j = 0; j < cols; j++) if (!visible || visible(j)) max = Math.max(max, value(j));
  let sum = 0;
  if (max > -Infinity) for (let j = 0; j < cols; j++) if (!visible || visible(j)) sum += Math.exp(value(j) - max);
  return { max, sum };
}

// ---- binding windows: tensors larger than one storage binding ------------------------------------

const bindingLimit = (b: GpuBackend) => b.limits.maxStorageBufferBindingSize;

/** Whether a storage fits one binding as a whole. */
export const fitsBinding = (b: GpuBackend, s: Storage): boolean => storageBytes(s.numel, s.dtype) <= bindingLimit(b);

/**
 * Binds elements [first, first + count) of a storage: the whole storage when it fits one binding,
 * else an aligned window around the range. `base` is the index of element `first` in the binding.
 */
export function bindSpan(b: GpuBackend, s: Storage, first: number, count: number): { binding: Binding; base: number } {
  if (fitsBinding(b, s)) return { binding: s, base: first };
  const eb = bytesPerElement(s.dtype);
  const align = Math.max(4, b.limits.minStorageBufferOffsetAlignment);
  const start = Math.floor((first * eb) / align) * align;
  const end = Math.min(storageBytes(s.numel, s.dtype), Math.max(start + 4, Math.ceil(((first + count) * eb) / 4) * 4));
  if (end - start > bindingLimit(b))
    throw new DeviceError(`internal: a ${end - start}-byte window is above maxStorageBufferBindingSize (${bindingLimit(b)})`);
  return { binding: { storage: s, byteOffset: start, byteLength: end - start }, base: first - start / eb };
}

/**
 * Splits `rows` rows into runs [r0, r1) whose windows fit one binding, given the largest number of
 * bytes one row takes in any of `storages` (the run is all rows when every storage fits as a whole).
 */
export function rowRuns(b: GpuBackend, rows: number, bytesPerRow: number, storages: Storage[]): [number, number][] {
  if (storages.every((s) => fitsBinding(b, s))) return [[0, rows]];
  const room = bindingLimit(b) - 2 * Math.max(4, b.limits.minStorageBufferOffsetAlignment);
  const per = Math.floor(room / bytesPerRow);
  if (per < 1)
    throw new DeviceError(`a row of ${bytesPerRow} bytes is above this adapter's maxStorageBufferBindingSize (${bindingLimit(b)})`);
  const runs: [number, number][] = [];
  for (let r = 0; r < rows; r += per) runs.push([r, Math.min(rows, r + per)]);
  return runs;
}
