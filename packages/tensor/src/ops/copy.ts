// The memory kernels everything else stands on, with no autograd: fill a tensor with a constant, and
// copy one strided view into another (bit-exact for 32-bit dtypes; a plain buffer copy when both are flat).
import type { Backend } from "../backend/backend.js";
import { isHalf } from "../dtype.js";
import { DTypeError, fmtShape, ShapeError } from "../errors.js";
import { collapseDims, contiguousStrides, type Shape, sameShape, stridedOffsets } from "../shape.js";
import { emptyTensor, sameBackend, type Tensor } from "../tensor.js";
import {
  bindSpan,
  cpuData,
  dimParams,
  fitsBinding,
  groups,
  isGpu,
  LINEAR_WG,
  MAIN,
  outputDecl,
  paramsDecl,
  stridedIndexWgsl,
  stridedParams,
} from "./kernel.js";

const WG = 256;

/** A new tensor filled with `value`. */
export function fill(backend: Backend, shape: Shape, value: number, dtype: "f32" | "i32" = "f32"): Tensor {
  const out = emptyTensor(backend, shape, dtype);
  if (out.size === 0) return out;
  if (isGpu(backend)) {
    // Runs of elements that fit one binding (one run unless the tensor is larger than a binding).
    const run = fitsBinding(backend, out.storage)
      ? out.size
      : Math.floor((backend.limits.maxStorageBufferBindingSize - 1024) / 4 / WG) * WG;
    for (let first = 0; first < out.size; first += run) {
      const n = Math.min(run, out.size - first);
      const w = bindSpan(backend, out.storage, first, n);
      const params = { u: { n, o: w.base }, f: { v: value } };
      backend.dispatch({
        key: `fill:${dtype}`,
        params,
        inputs: [],
        outputs: [w.binding],
        grid: groups(n, WG),
        wgsl: () => `${paramsDecl(params)}${outputDecl(1, "out", dtype)}
${MAIN(WG)} {
  let i = ${LINEAR_WG} * ${WG}u + lid.x;
  if (i < p.n) { out[p.o + i] = ${dtype}(p.v); }
}`,
      });
    }
  } else cpuData(out).fill(dtype === "i32" ? Math.trunc(value) : value);
  return out;
}

/** Copies the elements of view `src` into view `dst` (same shape), bit-exact for 32-bit dtypes. */
export function copyInto(dst: Tensor, src: Tensor): void {
  const b = sameBackend("copy", dst, src);
  if (!sameShape(dst.shape, src.shape))
    throw new ShapeError(`copy: destination ${fmtShape(dst.shape)} and source ${fmtShape(src.shape)} differ`);
  if (dst.dtype !== src.dtype) throw new DTypeError(`copy: destination is ${dst.dtype} but source is ${src.dtype}`);
  if (dst.size === 0) return;
  if (isHalf(src.dtype)) {
    throw new DTypeError(`copy: strided copies of ${src.dtype} tensors ${fmtShape(src.shape)} are not supported; cast(x, "f32") first`);
  }
  if (isGpu(b)) {
    const { shape: dims, strides } = collapseDims(dst.shape, [dst.strides, src.strides]);
    const rank = dims.length;
    if (rank <= 1 && (rank === 0 || (strides[0][0] === 1 && strides[1][0] === 1))) {
      b.copy(src.storage, src.offset * 4, dst.storage, dst.offset * 4, dst.size * 4);
      return;
    }
    const u: Record<string, number> = { n: dst.size };
    dimParams(dims, u);
    stridedParams("dst", dst.offset, strides[0], u);
    stridedParams("src", src.offset, strides[1], u);
    const params = { u };
    b.dispatch({
      key: `copy:r${rank}`,
      params,
      inputs: [src.storage],
      outputs: [dst.storage],
      grid: groups(dst.size, WG),
      wgsl: () => `${paramsDecl(params)}@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
${MAIN(WG)} {
  let i = ${LINEAR_WG} * ${WG}u + lid.x;
  if (i >= p.n) { return; }
${stridedIndexWgsl("src", rank, "i")}${stridedIndexWgsl("dst", rank, "i")}  dst[dst_off] = src[src_off];
}`,
    });
    return;
  }
  const so = stridedOffsets(src.shape, src.strides, src.offset);
  const dof = stridedOffsets(dst.shape, dst.strides, dst.offset);
  const sd = cpuData(src);
  const dd = cpuData(dst);
  for (let i = 0; i < so.length; i++) dd[dof[i]] = sd[so[i]];
}

/** A new contiguous tensor with the same values (no autograd). */
export function copyToContiguous(x: Tensor): Tensor {
  x.assertLive("contiguous");
  const out = emptyTensor(x.backend, x.shape, x.dtype);
  if (isHalf(x.dtype) && x.isContiguous && x.offset % 2 === 0 && isGpu(x.backend)) {
    x.backend.copy(x.storage, x.offset * 2, out.storage, 0, Math.ceil(x.size / 2) * 4);
    return out;
  }
  copyInto(out, x);
  return out;
}

/**
 * dst += src in place, elementwise (same shape; dst contiguous f32, src any f32 view). Gradient sums
 * in backward use it so a fan-in costs no new tensor.
 */
export function accumulateInto(dst: Tensor, src: Tensor): void {
  const b = sameBackend("accumulate", dst, src);
  if (!sameShape(dst.shape, src.shape))
    throw new ShapeError(`accumulate: destination ${fmtShape(dst.shape)} and source ${fmtShape(src.shape)} differ`);
  if (dst.dtype !== "f32" || src.dtype !== "f32" || !dst.isContiguous)
    throw new DTypeError("accumulate: needs a contiguous f32 destination and an f32 source");
  if (dst.size === 0) return;
  if (isGpu(b)) {
    const flat = src.isContiguous;
    const { shape: dims, strides } = collapseDims(src.shape, [contiguousStrides(src.shape), src.strides]);
    const rank = flat ? 1 : dims.length;
    const u: Record<string, number> = { n: dst.size, dst_o: dst.offset };
    if (flat) u.src_o = src.offset;
    else {
      dimParams(dims, u);
      stridedParams("src", src.offset, strides[1], u);
    }
    const params = { u };
    b.dispatch({
      key: `accumulate:${flat ? "flat" : `r${rank}`}`,
      params,
      inputs: [src.storage],
      outputs: [dst.storage],
      grid: groups(dst.size, WG),
      wgsl: () => `${paramsDecl(params)}@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
${MAIN(WG)} {
  let i = ${LINEAR_WG} * ${WG}u + lid.x;
  if (i >= p.n) { return; }
${flat ? "  let src_off = p.src_o + i;\n" : stridedIndexWgsl("src", rank, "i")}  dst[p.dst_o + i] = dst[p.dst_o + i] + src[src_off];
}`,
    });
    return;
  }
  const so = stridedOffsets(src.shape, src.strides, src.offset);
  const sd = cpuData(src);
  const dd = cpuData(dst);
  for (let i = 0; i < so.length; i++) dd[dst.offset + i] += sd[so[i]];
}
