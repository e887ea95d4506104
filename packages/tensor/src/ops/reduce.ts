// Reductions over any set of axes of any strided view (sum, mean, max) with keepdim, and sumTo for
// broadcast gradients. One workgroup per output for long reductions, one thread per output for short.
import { record } from "../autograd.js";
import { LINEAR_WG, paramsDecl } from "../backend/webgpu.js";
import { ShapeError, fmtShape } from "../errors.js";
import { collapseDims, normalizeAxes, numel, type Shape } from "../shape.js";
import type { Tensor } from "../tensor.js";
import { div, eq, mul } from "./elementwise.js";
import { cpuData, emptyTensor, gpuOf, groups, inputDecl, isGpu, MAIN, outputDecl, requireFloat, stridedOffsets } from "./kernel.js";
import { expand, reshape } from "./movement.js";

type Kind = "sum" | "max";
const WG = 64;

function keptShape(shape: Shape, axes: number[], keepdim: boolean): number[] {
  return keepdim ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

/** Raw reduction kernel: no autograd. */
function reduceRaw(kind: Kind, x: Tensor, axes: number[], keepdim: boolean): Tensor {
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
    const u: Record<string, number> = { nout, nred, off: x.offset };
    kept.shape.forEach((d, k) => {
      u[`kd${k}`] = d;
      u[`ks${k}`] = kept.strides[0][k];
    });
    red.shape.forEach((d, k) => {
      u[`rd${k}`] = d;
      u[`rs${k}`] = red.strides[0][k];
    });
    const params = { u };
    const kr = kept.shape.length;
    const rr = red.shape.length;
    const offsetOf = (prefix: string, rank: number, idx: string, target: string) => {
      if (rank === 0) return "";
      let s = `{ var r = ${idx};\n`;
      for (let k = rank - 1; k >= 1; k--) s += `  ${target} += (r % p.${prefix}d${k}) * p.${prefix}s${k}; r = r / p.${prefix}d${k};\n`;
      return `${s}  ${target} += r * p.${prefix}s0; }\n`;
    };
    const identity = kind === "sum" ? "0.0" : "-3.4028234663852886e38";
    const combine = (a: string, v: string) => (kind === "sum" ? `${a} + ${v}` : `max(${a}, ${v})`);
    const perThread = nred <= 256 && nout >= 256;
    const key = `reduce:${kind}:${x.dtype}:k${kr}:r${rr}:${perThread ? "t" : "w"}`;
    const head = `${paramsDecl(params)}${inputDecl(1, "x", x.dtype)}${outputDecl(2, "out")}`;
    const wgsl = perThread
      ? () => `${head}
${MAIN(WG)} {
  let o = ${LINEAR_WG} * ${WG}u + lid.x;
  if (o >= p.nout) { return; }
  var base = p.off;
${offsetOf("k", kr, "o", "base")}  var acc = ${identity};
  for (var j = 0u; j < p.nred; j++) {
    var off = base;
${offsetOf("r", rr, "j", "off")}    acc = ${combine("acc", "load_x(off)")};
  }
  out[o] = acc;
}`
      : () => `${head}var<workgroup> part: array<f32, ${WG}>;
${MAIN(WG)} {
  let o = ${LINEAR_WG};
  if (o >= p.nout) { return; }
  var base = p.off;
${offsetOf("k", kr, "o", "base")}  var acc = ${identity};
  for (var j = lid.x; j < p.nred; j += ${WG}u) {
    var off = base;
${offsetOf("r", rr, "j", "off")}    acc = ${combine("acc", "load_x(off)")};
  }
  part[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { part[lid.x] = ${combine("part[lid.x]", "part[lid.x + s]")}; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { out[o] = part[0]; }
}`;
    b.dispatch({ key, params, inputs: [gpuOf(x)], outputs: [gpuOf(out)], grid: perThread ? groups(nout, WG) : nout, wgsl });
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

/** Sum over `axes` (all when omitted). */
export function sum(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  x.check("sum");
  requireFloat("sum", x);
  const ax = normalizeAxes("sum", axes, x.rank);
  const y = reduceRaw("sum", x, ax, keepdim);
  return record(y, "sum", [x], (g) => {
    const gk = reshape(g, keptShape(x.shape, ax, true));
    const r = expand(gk, x.shape);
    gk.dispose();
    return [r];
  });
}

/** Mean over `axes` (all when omitted). */
export function mean(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  const ax = normalizeAxes("mean", axes, x.rank);
  const n = numel(ax.map((a) => x.shape[a]));
  const s = sum(x, ax, keepdim);
  const m = mul(s, 1 / n);
  s.dispose();
  return m;
}

/** Max over `axes`; the gradient is shared equally among tied maxima (like torch.amax). */
export function max(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  x.check("max");
  requireFloat("max", x);
  const ax = normalizeAxes("max", axes, x.rank);
  if (ax.some((a) => x.shape[a] === 0)) throw new ShapeError(`max: cannot reduce an empty axis of ${fmtShape(x.shape)}`);
  const y = reduceRaw("max", x, ax, keepdim);
  return record(y, "max", [x], (g) => {
    const ks = keptShape(x.shape, ax, true);
    const yk = reshape(y, ks);
    const mask = eq(x, yk);
    const count = reduceRaw("sum", mask, ax, true);
    const gk = reshape(g, ks);
    const share = div(gk, count);
    const dx = mul(mask, share);
    for (const t of [yk, mask, count, gk, share]) t.dispose();
    return [dx];
  });
}

/** Sums `g` over the axes that broadcasting added or expanded, giving it shape `shape`. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  const lead = g.rank - shape.length;
  if (lead < 0) throw new ShapeError(`sumTo: cannot reduce ${fmtShape(g.shape)} to larger rank ${fmtShape(shape)}`);
  const axes: number[] = [];
  g.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  const s = sum(g, axes, true);
  const r = reshape(s, shape);
  s.dispose();
  return r;
}
