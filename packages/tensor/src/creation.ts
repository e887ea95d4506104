// Creating tensors: from JS arrays or typed arrays, constants, ranges and seeded random numbers,
// on the default backend or an explicit one; toBackend() moves data between the CPU oracle and GPU.
import type { Backend } from "./backend/backend.js";
import { bytesPerElement, type DType } from "./dtype.js";
import { ArgumentError, ShapeError, fmtShape } from "./errors.js";
import { fill } from "./ops/copy.js";
import { checkShape, numel, type Shape } from "./shape.js";
import { getDefaultBackend, Tensor } from "./tensor.js";

export interface CreateOptions {
  dtype?: DType;
  backend?: Backend;
  requiresGrad?: boolean;
}

type Nested = number | readonly Nested[];

function flattenNested(x: Nested, shape: number[], out: number[], depth = 0): void {
  if (typeof x === "number") {
    if (depth !== shape.length) throw new ShapeError("tensor: ragged nested array");
    out.push(x);
    return;
  }
  if (depth === shape.length) shape.push(x.length);
  else if (shape[depth] !== x.length) throw new ShapeError("tensor: ragged nested array");
  for (const v of x) flattenNested(v, shape, out, depth + 1);
}

/** A tensor from a (nested) array or typed array; `shape` is required for flat data of rank != 1. */
export function tensor(values: Nested | ArrayLike<number>, shape?: Shape, opts: CreateOptions = {}): Tensor {
  const backend = opts.backend ?? getDefaultBackend();
  let flat: ArrayLike<number>;
  let s: number[];
  if (typeof values === "number") {
    flat = [values];
    s = [];
  } else if (Array.isArray(values) && values.some((v) => Array.isArray(v))) {
    const f: number[] = [];
    s = [];
    flattenNested(values as Nested, s, f);
    flat = f;
  } else {
    flat = values as ArrayLike<number>;
    s = [flat.length];
  }
  if (shape) {
    checkShape("tensor", shape);
    if (numel(shape) !== flat.length) throw new ShapeError(`tensor: ${flat.length} values do not fill shape ${fmtShape(shape)}`);
    s = [...shape];
  }
  const dtype = opts.dtype ?? (values instanceof Int32Array ? "i32" : "f32");
  const t = new Tensor(backend.upload(dtype, flat), s);
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

const make = (shape: Shape, v: number, opts: CreateOptions): Tensor => {
  checkShape("full", shape);
  const dtype = opts.dtype ?? "f32";
  const b = opts.backend ?? getDefaultBackend();
  const t =
    dtype === "f32" || dtype === "i32"
      ? fill(b, shape, v, dtype)
      : new Tensor(b.upload(dtype, new Float32Array(numel(shape)).fill(v)), [...shape]);
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
};

export const zeros = (shape: Shape, opts: CreateOptions = {}): Tensor => make(shape, 0, opts);
export const ones = (shape: Shape, opts: CreateOptions = {}): Tensor => make(shape, 1, opts);
export const full = (shape: Shape, value: number, opts: CreateOptions = {}): Tensor => make(shape, value, opts);
export const zerosLike = (t: Tensor): Tensor => fill(t.backend, t.shape, 0);
export const onesLike = (t: Tensor): Tensor => fill(t.backend, t.shape, 1);

/** [start, end) with `step`, like numpy.arange (f32 unless dtype i32). */
export function arange(start: number, end?: number, step = 1, opts: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new ArgumentError("arange: step must not be 0");
  const n = Math.max(0, Math.ceil((end - start) / step));
  return tensor(
    Array.from({ length: n }, (_, i) => start + i * step),
    [n],
    opts,
  );
}

/**
 * A small, fast, seedable PRNG (mulberry32) so initialisations are reproducible everywhere. Its whole
 * state is one 32-bit word: `getState()` / `setState()` save and restore it exactly (checkpoints).
 */
export class Rng {
  private s: number;
  constructor(seed = 0) {
    this.s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  /** A 32-bit seed for GPU-side randomness (dropout). */
  nextU32(): number {
    return Math.floor(this.next() * 4294967296) >>> 0;
  }
  /** The generator's state: after `setState(s)` it draws exactly what it drew after `getState()` returned s. */
  getState(): number {
    return this.s;
  }
  setState(state: number): void {
    if (!Number.isInteger(state) || state < 0 || state > 0xffffffff)
      throw new ArgumentError(`Rng.setState: the state must be a 32-bit unsigned integer (from getState()), got ${state}`);
    this.s = state >>> 0;
  }
}

export interface RandomOptions extends CreateOptions {
  seed?: number;
  rng?: Rng;
}

function random(shape: Shape, gen: (r: Rng) => number, opts: RandomOptions): Tensor {
  checkShape("random", shape);
  const rng = opts.rng ?? new Rng(opts.seed ?? 0);
  const v = new Float32Array(numel(shape));
  for (let i = 0; i < v.length; i++) v[i] = gen(rng);
  return tensor(v, shape, opts);
}

/** Normal(mean, std) values, reproducible for a given seed. */
export const randn = (shape: Shape, opts: RandomOptions & { mean?: number; std?: number } = {}): Tensor =>
  random(shape, (r) => (opts.mean ?? 0) + (opts.std ?? 1) * r.normal(), opts);

/** Uniform values in [low, high). */
export const rand = (shape: Shape, opts: RandomOptions & { low?: number; high?: number } = {}): Tensor =>
  random(shape, (r) => (opts.low ?? 0) + ((opts.high ?? 1) - (opts.low ?? 0)) * r.next(), opts);

/** Integers in [low, high), as i32. */
export const randint = (shape: Shape, low: number, high: number, opts: RandomOptions = {}): Tensor => {
  checkShape("randint", shape);
  const rng = opts.rng ?? new Rng(opts.seed ?? 0);
  const v = new Int32Array(numel(shape));
  for (let i = 0; i < v.length; i++) v[i] = low + Math.floor(rng.next() * (high - low));
  return tensor(v, shape, { ...opts, dtype: "i32" });
};

/**
 * A tensor from raw little-endian bytes in the dtype's layout (e.g. a safetensors F32/BF16/F16/I32
 * tensor): 16-bit data is uploaded as is and stays 16-bit on the device.
 */
export function tensorFromBytes(bytes: Uint8Array, dtype: DType, shape: Shape, opts: Omit<CreateOptions, "dtype"> = {}): Tensor {
  checkShape("tensorFromBytes", shape);
  const want = numel(shape) * bytesPerElement(dtype);
  if (bytes.byteLength !== want)
    throw new ShapeError(
      `tensorFromBytes: ${bytes.byteLength} bytes do not hold a ${dtype} tensor of shape ${fmtShape(shape)} (${want} bytes)`,
    );
  const backend = opts.backend ?? getDefaultBackend();
  const t = new Tensor(backend.uploadBytes(dtype, bytes), [...shape]);
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

/** Copies a tensor to another backend (e.g. GPU result -> CPU oracle for comparison). */
export async function toBackend(t: Tensor, backend: Backend): Promise<Tensor> {
  const data = await t.data();
  return new Tensor(backend.upload(t.dtype, data), [...t.shape]);
}
