// Shape ops: reshape, permute, slice, expand, concat, squeeze. Views share storage (no copy) where
// the strides allow; the strided copy kernel (copy.ts) does the rest.
import { ArgumentError, fmtShape, IndexError, ShapeError } from "../errors.js";
import { record } from "../graph.js";
import { contiguousStrides, normalizeAxis, numel, type Shape } from "../shape.js";
import { emptyTensor, sameBackend, type Tensor } from "../tensor.js";
import { copyInto, copyToContiguous, fill } from "./copy.js";
import { sumTo } from "./reduce.js";

/** `x` itself (as a new view) when already contiguous, else a contiguous copy. Differentiable. */
export function contiguous(x: Tensor): Tensor {
  x.assertLive("contiguous");
  const y = x.isContiguous ? x.viewAs(x.shape, contiguousStrides(x.shape)) : copyToContiguous(x);
  return record(y, "contiguous", [x], (g) => [g.viewAs(g.shape, g.strides, g.offset)]);
}

function resolveShape(op: string, x: Tensor, shape: readonly number[]): number[] {
  const s = [...shape];
  const inferred = s.indexOf(-1);
  if (inferred !== s.lastIndexOf(-1)) throw new ShapeError(`${op}: only one dimension can be -1 in ${fmtShape(shape)}`);
  if (inferred >= 0) {
    const rest = numel(s.filter((_, i) => i !== inferred));
    if (rest === 0 || x.size % rest !== 0)
      throw new ShapeError(`${op}: cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(shape)}`);
    s[inferred] = x.size / rest;
  }
  if (numel(s) !== x.size || s.some((d) => !Number.isInteger(d) || d < 0))
    throw new ShapeError(`${op}: cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(shape)}`);
  return s;
}

/** Reshape (one -1 allowed). A view when `x` is contiguous, else a copy. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  x.assertLive("reshape");
  const s = resolveShape("reshape", x, shape);
  const src = x.isContiguous ? x : copyToContiguous(x);
  const y = src.viewAs(s, contiguousStrides(s), src.offset);
  if (src !== x) src.dispose();
  return record(y, "reshape", [x], (g) => [reshape(g, x.shape)]);
}

export const flatten = (x: Tensor): Tensor => reshape(x, [x.size]);

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normalizeAxis("unsqueeze", axis, x.rank + 1);
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return reshape(x, s);
}

/** Removes size-1 axes (all of them when `axis` is omitted). */
export function squeeze(x: Tensor, axis?: number): Tensor {
  if (axis === undefined)
    return reshape(
      x,
      x.shape.filter((d) => d !== 1),
    );
  const a = normalizeAxis("squeeze", axis, x.rank);
  if (x.shape[a] !== 1) throw new ShapeError(`squeeze: axis ${axis} of ${fmtShape(x.shape)} has size ${x.shape[a]}, not 1`);
  return reshape(
    x,
    x.shape.filter((_, i) => i !== a),
  );
}

/** Reorders axes (a view). */
export function permute(x: Tensor, axes: readonly number[]): Tensor {
  x.assertLive("permute");
  const norm = axes.map((a) => normalizeAxis("permute", a, x.rank));
  if (norm.length !== x.rank || new Set(norm).size !== x.rank)
    throw new ShapeError(`permute: [${axes.join(",")}] is not a permutation of the ${x.rank} axes of ${fmtShape(x.shape)}`);
  const y = x.viewAs(
    norm.map((a) => x.shape[a]),
    norm.map((a) => x.strides[a]),
  );
  const inverse = new Array<number>(norm.length);
  norm.forEach((a, i) => (inverse[a] = i));
  return record(y, "permute", [x], (g) => [permute(g, inverse)]);
}

/** Swaps two axes (default: the last two). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const axes = [...Array(x.rank).keys()];
  const i = normalizeAxis("transpose", a, x.rank);
  const j = normalizeAxis("transpose", b, x.rank);
  [axes[i], axes[j]] = [axes[j], axes[i]];
  return permute(x, axes);
}

/** One slice range per leading axis: [start, end) with optional positive step; negative indices count from the end. */
export type SliceRange = readonly [number, number?, number?] | null;

function sliceView(x: Tensor, ranges: readonly SliceRange[]): { shape: number[]; strides: number[]; offset: number } {
  if (ranges.length > x.rank) throw new IndexError(`slice: ${ranges.length} ranges for a tensor of rank ${x.rank} ${fmtShape(x.shape)}`);
  const shape = [...x.shape];
  const strides = [...x.strides];
  let offset = x.offset;
  ranges.forEach((r, ax) => {
    if (!r) return;
    const d = x.shape[ax];
    const step = r[2] ?? 1;
    if (!Number.isInteger(step) || step <= 0) throw new IndexError(`slice: step ${step} on axis ${ax} must be a positive integer`);
    const norm = (v: number) => (v < 0 ? v + d : v);
    const start = norm(r[0]);
    const end = Math.min(norm(r[1] ?? d), d);
    if (!Number.isInteger(start) || start < 0 || start > d || end < start)
      throw new IndexError(`slice: range [${r[0]}, ${r[1] ?? ""}) is out of bounds for axis ${ax} of size ${d} in ${fmtShape(x.shape)}`);
    shape[ax] = Math.ceil((end - start) / step);
    offset += start * x.strides[ax];
    strides[ax] = x.strides[ax] * step;
  });
  return { shape, strides, offset };
}

/** Basic slicing (a view), like `x[a:b:s, c:d]`. Missing trailing ranges keep whole axes. */
export function slice(x: Tensor, ranges: readonly SliceRange[]): Tensor {
  x.assertLive("slice");
  const v = sliceView(x, ranges);
  const y = x.viewAs(v.shape, v.strides, v.offset);
  return record(y, "slice", [x], (g) => {
    const dx = fill(g.backend, x.shape, 0);
    const w = sliceView(dx, ranges);
    const win = dx.viewAs(w.shape, w.strides, w.offset);
    copyInto(win, g);
    win.dispose();
    return [dx];
  });
}

/** Narrows one axis to [start, start + length). */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = normalizeAxis("narrow", axis, x.rank);
  const ranges: SliceRange[] = x.shape.map(() => null);
  ranges[a] = [start, start + length];
  if (start < 0 || start + length > x.shape[a])
    throw new IndexError(`narrow: [${start}, ${start + length}) is out of bounds for axis ${axis} of size ${x.shape[a]}`);
  return slice(x, ranges);
}

/** Broadcasts size-1 axes to `shape` (a view with stride 0). Gradients are summed back. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  x.assertLive("expand");
  if (shape.length < x.rank) throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to fewer dimensions ${fmtShape(shape)}`);
  const lead = shape.length - x.rank;
  const strides = shape.map((d, i) => {
    if (i < lead) return 0;
    const xd = x.shape[i - lead];
    if (xd === d || d === -1) return x.strides[i - lead];
    if (xd === 1) return 0;
    throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)} (axis ${i - lead} has size ${xd})`);
  });
  const target = shape.map((d, i) => (d === -1 ? x.shape[i - lead] : d));
  const y = x.viewAs(target, strides);
  return record(y, "expand", [x], (g) => [sumTo(g, x.shape)]);
}

/** Joins tensors along an existing axis. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new ArgumentError("concat: needs at least one tensor");
  const b = sameBackend("concat", ...xs);
  const first = xs[0];
  const a = normalizeAxis("concat", axis, first.rank);
  for (const t of xs) {
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== a && d !== first.shape[i]) || t.dtype !== first.dtype)
      throw new ShapeError(`concat: ${xs.map((t) => `${t.dtype}${fmtShape(t.shape)}`).join(", ")} do not match outside axis ${axis}`);
  }
  const shape = [...first.shape];
  shape[a] = xs.reduce((s, t) => s + t.shape[a], 0);
  const out = emptyTensor(b, shape, first.dtype);
  const starts: number[] = [];
  let start = 0;
  for (const t of xs) {
    starts.push(start);
    const ranges: SliceRange[] = shape.map(() => null);
    ranges[a] = [start, start + t.shape[a]];
    const win = slice(out, ranges);
    copyInto(win, t);
    win.dispose();
    start += t.shape[a];
  }
  return record(out, "concat", [...xs], (g, needs) =>
    xs.map((t, i) => (needs[i] ? contiguous(narrow(g, a, starts[i], t.shape[a])) : null)),
  );
}

/** Splits along an axis into pieces of the given sizes (views). */
export function split(x: Tensor, sizes: readonly number[], axis = 0): Tensor[] {
  const a = normalizeAxis("split", axis, x.rank);
  if (sizes.reduce((s, v) => s + v, 0) !== x.shape[a])
    throw new ShapeError(`split: sizes [${sizes.join(",")}] do not add up to axis ${axis} of ${fmtShape(x.shape)}`);
  let start = 0;
  return sizes.map((n) => {
    const t = narrow(x, a, start, n);
    start += n;
    return t;
  });
}

export type { Shape };
