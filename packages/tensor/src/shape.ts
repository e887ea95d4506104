// Shape arithmetic shared by every op: numel, strides, broadcasting, axis normalisation and
// dimension collapsing for strided kernels. Pure functions, no GPU.
import { IndexError, ShapeError, fmtShape } from "./errors.js";

export type Shape = readonly number[];

export const numel = (s: Shape): number => s.reduce((a, b) => a * b, 1);

export function contiguousStrides(s: Shape): number[] {
  const st = new Array<number>(s.length);
  let acc = 1;
  for (let i = s.length - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

export const sameShape = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** NumPy broadcasting of any number of shapes; throws ShapeError naming the op and shapes. */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const j = rank - s.length + i;
      const d = s[i];
      if (d === out[j] || d === 1) continue;
      if (out[j] === 1) out[j] = d;
      else throw new ShapeError(`${op}: shapes ${shapes.map(fmtShape).join(" and ")} cannot be broadcast together`);
    }
  }
  return out;
}

/** Strides that read a tensor of shape `s` (with `strides`) broadcast to `target` (0 on broadcast axes). */
export function broadcastStrides(s: Shape, strides: readonly number[], target: Shape): number[] {
  const out = new Array<number>(target.length).fill(0);
  for (let i = 0; i < s.length; i++) {
    const j = target.length - s.length + i;
    out[j] = s[i] === 1 && target[j] !== 1 ? 0 : strides[i];
  }
  return out;
}

export function normalizeAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= rank)
    throw new IndexError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  return a;
}

/** Normalises `axes` (undefined = all) to a sorted list of unique non-negative axes. */
export function normalizeAxes(op: string, axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = typeof axes === "number" ? [axes] : axes;
  const out = [...new Set(list.map((a) => normalizeAxis(op, a, rank)))].sort((x, y) => x - y);
  if (out.length !== list.length) throw new IndexError(`${op}: repeated axis in [${list.join(",")}]`);
  return out;
}

/**
 * Merges adjacent dimensions that every operand walks contiguously (stride[i] = stride[i+1]·shape[i+1]),
 * and drops size-1 dimensions, so strided kernels do the least index arithmetic.
 */
export function collapseDims(shape: Shape, stridesList: (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const dims: number[] = [];
  const strides: number[][] = stridesList.map(() => []);
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && stridesList.every((st, k) => strides[k][last] === st[i] * shape[i])) {
      dims[last] *= shape[i];
      stridesList.forEach((st, k) => (strides[k][last] = st[i]));
    } else {
      dims.push(shape[i]);
      stridesList.forEach((st, k) => strides[k].push(st[i]));
    }
  }
  return { shape: dims, strides };
}

export function checkShape(op: string, s: Shape): void {
  for (const d of s)
    if (!Number.isInteger(d) || d < 0)
      throw new ShapeError(`${op}: invalid shape ${fmtShape(s)} (dimensions must be non-negative integers)`);
}

/** Element offsets of a strided view in logical order. */
export function stridedOffsets(shape: Shape, strides: readonly number[], offset: number): Int32Array | Float64Array {
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

/** The first and one-past-last element a strided view touches (its storage span). */
export function viewSpan(shape: Shape, strides: readonly number[], offset: number): [number, number] {
  if (numel(shape) === 0) return [offset, offset];
  let lo = offset;
  let hi = offset;
  shape.forEach((d, i) => {
    const reach = (d - 1) * strides[i];
    if (reach < 0) lo += reach;
    else hi += reach;
  });
  return [lo, hi + 1];
}
