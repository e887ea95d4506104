// Reductions over any set of axes of any strided view (sum, mean, max) with keepdim, and sumTo for
// broadcast gradients. One workgroup per output for long reductions, one thread per output for short.
import { ShapeError, fmtShape } from "../errors.js";
import { record } from "../graph.js";
import type { GpuBackend } from "../backend/backend.js";
import { bytesPerElement } from "../dtype.js";
import { collapseDims, contiguousStrides, normalizeAxes, numel, type Shape, stridedOffsets, viewSpan } from "../shape.js";
import { emptyTensor, type Tensor } from "../tensor.js";
import { copyInto } from "./copy.js";
import { mapElementwise } from "./elementwise-kernel.js";
import {
  bindSpan,
  cpuData,
  fitsBinding,
  groups,
  inputDecl,
  isGpu,
  LINEAR_WG,
  MAIN,
  outputDecl,
  paramsDecl,
  requireFloat,
  stridedOffsetWgsl,
  wgReduceLib,
} from "./kernel.js";

type Kind = "sum" | "max";
const WG = 64;

function keptShape(shape: Shape, axes: number[], keepdim: boolean): number[] {
  return keepdim ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

/** `g` (y's shape, reduced axes kept or dropped) as a broadcast view of `shape`: stride 0 on reduced axes. */
function broadcastBack(g: Tensor, shape: Shape, axes: number[], keepdim: boolean): Tensor {
  let gi = 0;
  const strides = shape.map((_, i) => {
    const reduced = axes.includes(i);
    const st = reduced ? 0 : g.strides[gi];
    if (!reduced || keepdim) gi++;
    return st;
  });
  return g.viewAs(shape, strides, g.offset);
}

/** Raw reduction kernel: no autograd. */
export function reduceRaw(kind: Kind, x: Tensor, axes: number[], keepdim: boolean): Tensor {
  const outShape = keptShape(x.shape, axes, keepdim);
  const out = emptyTensor(x.backend, outShape, "f32");
  const keptAxes = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const kept = collapseDims(
    keptAxes.map((i) => x.shape[i]),
    [keptAxes.map((i) => x.strides[i])],
  );
  const red = collapseDims(
    axes.map((i) => x.shape[i]),
    [axes.map((i) => x.strides[i])],
  );
  const nout = out.size;
  const nred = numel(red.shape);
  if (nout === 0) return out;
  const b = x.backend;
  if (isGpu(b)) {
    const [lo, hi] = viewSpan(x.shape, x.strides, x.offset);
    const room = b.limits.maxStorageBufferBindingSize - 2 * Math.max(4, b.limits.minStorageBufferOffsetAlignment);
    if (!fitsBinding(b, x.storage) && (hi - lo) * bytesPerElement(x.dtype) > room) return reduceInSlabs(kind, x, axes, keepdim, out);
    const win = bindSpan(b, x.storage, lo, hi - lo);
    const u: Record<string, number> = { nout, nred, off: x.offset - lo + win.base };
    kept.shape.forEach((d, k) => {
      u[`kd${k}`] = d;
      u[`k_s${k}`] = kept.strides[0][k];
    });
    red.shape.forEach((d, k) => {
      u[`rd${k}`] = d;
      u[`r_s${k}`] = red.strides[0][k];
    });
    const params = { u };
    const kr = kept.shape.length;
    const rr = red.shape.length;
    const identity = kind === "sum" ? "0.0" : "-3.4028234663852886e38";
    const combine = (a: string, v: string) => (kind === "sum" ? `${a} + ${v}` : `max(${a}, ${v})`);
    const perThread = nred <= 256 && nout >= 256;
    const key = `reduce:${kind}:${x.dtype}:k${kr}:r${rr}:${perThread ? "t" : "w"}`;
    const head = `${paramsDecl(params)}${inputDecl(1, "x", x.dtype)}${outputDecl(2, "out")}`;
    const loop = (start: string, step: string) => `  var base = p.off;
${stridedOffsetWgsl("base", "k", kr, "o", "kd")}  var acc = ${identity};
  for (var j = ${start}; j < p.nred; j += ${step}) {
    var off = base;
${stridedOffsetWgsl("off", "r", rr, "j", "rd")}    acc = ${combine("acc", "load_x(off)")};
  }
`;
    const wgsl = perThread
      ? () => `${head}
${MAIN(WG)} {
  let o = ${LINEAR_WG} * ${WG}u + lid.x;
  if (o >= p.nout) { return; }
${loop("0u", "1u")}  out[o] = acc;
}`
      : () => `${head}${wgReduceLib(WG)}
${MAIN(WG)} {
  let o = ${LINEAR_WG};
  if (o >= p.nout) { return; }
${loop("lid.x", `${WG}u`)}  let r = ${kind === "sum" ? "wg_sum" : "wg_max"}(acc, lid.x);
  if (lid.x == 0u) { out[o] = r; }
}`;
    b.dispatch({ key, params, inputs: [win.binding], outputs: [out.storage], grid: perThread ? groups(nout, WG) : nout, wgsl });
    return out;
  }
  // CPU oracle: float64, straightforward loops over logical coordinates.
  const xd = cpuData(x);
  const od = cpuData(out);
  const baseOffs = stridedOffsets(kept.shape, kept.strides[0], x.offset);
  const redOffs = stridedOffsets(red.shape, red.strides[0], 0);
  for (let o = 0; o < nout; o++) {
    let acc = kind === "sum" ? 0 : -Infinity;
    for (let j = 0; j < nred; j++) {
      const v = xd[baseOffs[o] + redOffs[j]];
      acc = kind === "sum" ? acc + v : Math.max(acc, v);
    }
    od[o] = acc;
  }
  return out;
}

/**
 * A reduction of a view whose span exceeds one storage binding: split its first non-trivial axis into
 * slabs that fit, reduce each, then combine (sum/max when that axis is reduced, else place the slabs).
 */
function reduceInSlabs(kind: Kind, x: Tensor, axes: number[], keepdim: boolean, out: Tensor): Tensor {
  const a = x.shape.findIndex((d) => d > 1);
  const d = x.shape[a];
  const [lo, hi] = viewSpan(x.shape, x.strides, x.offset);
  const b = x.backend as GpuBackend;
  const room = b.limits.maxStorageBufferBindingSize - 2 * Math.max(4, b.limits.minStorageBufferOffsetAlignment);
  const per = Math.max(1, Math.floor((d * room) / ((hi - lo) * bytesPerElement(x.dtype))));
  const reduced = axes.includes(a);
  let acc: Tensor | null = null;
  const outFull = keptShape(x.shape, axes, true);
  for (let i0 = 0; i0 < d; i0 += per) {
    const n = Math.min(per, d - i0);
    const shape = x.shape.map((v, k) => (k === a ? n : v));
    const slab = x.viewAs(shape, x.strides, x.offset + i0 * x.strides[a]);
    const r = reduceRaw(kind, slab, axes, true);
    slab.dispose();
    if (reduced) {
      const next: Tensor = acc
        ? mapElementwise(
            `reduce_combine_${kind}`,
            [acc, r],
            ([p, q]) => (kind === "sum" ? `${p} + ${q}` : `max(${p}, ${q})`),
            (p, q) => (kind === "sum" ? p + q : Math.max(p, q)),
          )
        : r;
      if (acc) {
        acc.dispose();
        r.dispose();
      }
      acc = next;
    } else {
      // This slab's outputs: positions i0 .. i0 + n along axis a of the keepdim output.
      const strides = contiguousStrides(outFull);
      const dst = out.viewAs(r.shape, strides, i0 * strides[a]);
      copyInto(dst, r);
      dst.dispose();
      r.dispose();
    }
  }
  if (!reduced) return out;
  out.dispose();
  const res = acc as Tensor;
  const v = res.viewAs(keptShape(x.shape, axes, keepdim));
  res.dispose();
  return v;
}

/** Sum over `axes` (all when omitted). */
export function sum(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  x.assertLive("sum");
  requireFloat("sum", x);
  const ax = normalizeAxes("sum", axes, x.rank);
  const y = reduceRaw("sum", x, ax, keepdim);
  return record(y, "sum", [x], (g) => [broadcastBack(g, x.shape, ax, keepdim)]);
}

/** Mean over `axes` (all when omitted). */
export function mean(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  x.assertLive("mean");
  requireFloat("mean", x);
  const ax = normalizeAxes("mean", axes, x.rank);
  const scale = 1 / numel(ax.map((a) => x.shape[a]));
  const total = reduceRaw("sum", x, ax, keepdim);
  const y = mapElementwise(
    "mul",
    [total, scale],
    ([v, s]) => `${v} * ${s}`,
    (v, s) => v * s,
  );
  total.dispose();
  return record(y, "mean", [x], (g) => {
    const wide = broadcastBack(g, x.shape, ax, keepdim);
    const dx = mapElementwise(
      "mul",
      [wide, scale],
      ([v, s]) => `${v} * ${s}`,
      (v, s) => v * s,
    );
    wide.dispose();
    return [dx];
  });
}

/** Max over `axes`; the gradient is shared equally among tied maxima (like torch.amax). */
export function max(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  x.assertLive("max");
  requireFloat("max", x);
  const ax = normalizeAxes("max", axes, x.rank);
  if (ax.some((a) => x.shape[a] === 0)) throw new ShapeError(`max: cannot reduce an empty axis of ${fmtShape(x.shape)}`);
  const y = reduceRaw("max", x, ax, keepdim);
  return record(
    y,
    "max",
    [x],
    (g, _needs, [xs, ys]) => {
      const yb = broadcastBack(ys, x.shape, ax, keepdim);
      const hit = mapElementwise(
        "max_mask",
        [xs, yb],
        ([a, m]) => `select(0.0, 1.0, ${a} == ${m})`,
        (a, m) => +(a === m),
      );
      const count = reduceRaw("sum", hit, ax, true);
      const gb = broadcastBack(g, x.shape, ax, keepdim);
      const cb = broadcastBack(count, x.shape, ax, true);
      const dx = mapElementwise(
        "max_grad",
        [hit, gb, cb],
        ([h, gv, c]) => `${h} * ${gv} / ${c}`,
        (h, gv, c) => (h * gv) / c,
      );
      for (const t of [yb, hit, count, gb, cb]) t.dispose();
      return [dx];
    },
    [x, y],
  );
}

/** Sums `g` over the axes that broadcasting added or expanded, giving it shape `shape` (no autograd: for backward rules). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  const lead = g.rank - shape.length;
  if (lead < 0) throw new ShapeError(`sumTo: cannot reduce ${fmtShape(g.shape)} to larger rank ${fmtShape(shape)}`);
  const axes: number[] = [];
  g.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  const s = reduceRaw("sum", g, axes, true);
  const r = s.viewAs(shape);
  s.dispose();
  return r;
}
