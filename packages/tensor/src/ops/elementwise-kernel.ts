// The one elementwise kernel generator: a WGSL expression (and its float64 twin for the oracle)
// over broadcast, strided arguments into a fresh contiguous tensor. No autograd; ops add it.
import { type DType, storageBytes } from "../dtype.js";
import { broadcastShapes, broadcastStrides, collapseDims, contiguousStrides, sameShape, stridedOffsets } from "../shape.js";
import { emptyTensor, sameBackend, Tensor } from "../tensor.js";
import {
  bindSpan,
  cpuData,
  dimParams,
  inputDecl,
  isGpu,
  LINEAR_WG,
  MAIN,
  outputDecl,
  paramsDecl,
  stridedIndexWgsl,
  stridedParams,
} from "./kernel.js";

export type Arg = Tensor | number;
const WG = 64;
/**
 * Elements per invocation on large tensors on software adapters (lavapipe: fewer, fuller workgroups
 * ran an add 2-3× faster); GPUs keep one element per invocation, they need the parallelism.
 */
const PER_LANE = 16;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

/** WGSL helpers available to every elementwise expression. */
const WGSL_LIB = `
fn tanh_s(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }
fn sigmoid_s(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn erf_s(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807
    + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}
fn gelu_grad(x: f32) -> f32 {
  let t = tanh_s(${SQRT_2_OVER_PI} * (x + ${GELU_C} * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * ${SQRT_2_OVER_PI} * (1.0 + ${3 * GELU_C} * x * x);
}
fn pow_s(x: f32, e: f32) -> f32 {
  if (e == 0.0) { return 1.0; }
  if (e == round(e)) { let r = pow(abs(x), e); return select(r, -r, x < 0.0 && abs(e % 2.0) == 1.0); }
  return pow(x, e);
}
`;

/**
 * Runs `wgslExpr` over broadcast arguments into a fresh contiguous tensor: tensors are loaded as f32
 * `v<k>`, numbers are f32 uniforms `p.s<k>`, and `i` (u32; the last argument of `cpuExpr`) is the
 * output element's index. Pipelines are keyed on the generated expression, so two
 * calls with different expressions never share a kernel. Flat same-shape arguments larger than one
 * storage binding run in windows.
 */
export function mapElementwise(
  op: string,
  args: Arg[],
  wgslExpr: (v: string[]) => string,
  cpuExpr: (...v: number[]) => number,
  outDtype: DType = "f32",
): Tensor {
  const tensors = args.filter((a): a is Tensor => a instanceof Tensor);
  const b = sameBackend(op, ...tensors);
  const shape = broadcastShapes(op, ...tensors.map((t) => t.shape));
  const out = emptyTensor(b, shape, outDtype);
  if (out.size === 0) return out;
  if (!isGpu(b)) {
    // CPU oracle: float64 over broadcast views.
    const o = cpuData(out);
    const readers = args.map((a) => {
      if (typeof a === "number") return () => a;
      const d = cpuData(a);
      const offs = stridedOffsets(shape, broadcastStrides(a.shape, a.strides, shape), a.offset);
      return (i: number) => d[offs[i]];
    });
    const vals = new Array<number>(args.length);
    for (let i = 0; i < out.size; i++) {
      for (let k = 0; k < readers.length; k++) vals[k] = readers[k](i);
      const r = cpuExpr(...vals, i);
      o[i] = outDtype === "i32" ? Math.trunc(r) : r;
    }
    return out;
  }
  // Per tensor argument: read at the output index (flat: contiguous, same shape) or strided.
  const flat = tensors.every((t) => t.isContiguous && sameShape(t.shape, shape));
  const layout = flat
    ? { dims: [out.size], strides: tensors.map(() => [] as number[]) }
    : (() => {
        const c = collapseDims(shape, [contiguousStrides(shape), ...tensors.map((t) => broadcastStrides(t.shape, t.strides, shape))]);
        return { dims: c.shape, strides: c.strides.slice(1).map((st) => (st.every((v, i) => v === c.strides[0][i]) ? [] : st)) };
      })();
  const rank = layout.dims.length;
  const names = args.map((a, k) => (typeof a === "number" ? `p.s${k}` : `v${k}`));
  const expr = wgslExpr(names);
  const store = outDtype === "i32" ? `i32(${expr})` : expr;
  let key = `ew:${op}:${outDtype}:${flat ? "flat" : `r${rank}`}`;
  const direct: boolean[] = [];
  let t = 0;
  for (const a of args) {
    if (typeof a === "number") {
      key += ":k";
      continue;
    }
    direct.push(layout.strides[t++].length === 0);
    key += `:${a.dtype}${direct[direct.length - 1] ? "c" : "s"}`;
  }
  key += `|${store}`;
  const wgsl = () => {
    let decls = "";
    let body = "";
    let bind = 1;
    let ti = 0;
    args.forEach((a, k) => {
      if (typeof a === "number") return;
      const nm = `a${k}`;
      decls += inputDecl(bind++, nm, a.dtype);
      body += direct[ti++] ? `let ${nm}_off = p.${nm}_o + li;\n` : stridedIndexWgsl(nm, rank, "i");
      body += `let v${k} = f32(load_${nm}(${nm}_off));\n`;
    });
    return `${paramsDecl(paramsOf(0, out.size, 0))}${decls}${outputDecl(bind, "out", outDtype === "i32" ? "i32" : "f32")}${WGSL_LIB}
${MAIN(WG)} {
  // Grid-stride loop: neighbouring lanes touch neighbouring elements on every iteration.
  for (var li = ${LINEAR_WG} * ${WG}u + lid.x; li < p.n; li += p.stride) {
  let i = p.e0 + li;
${body}  out[p.oo + li] = ${store};
  }
}`;
  };
  function paramsOf(first: number, n: number, outBase: number, bases: number[] = []) {
    const u: Record<string, number> = { n, stride: groupsFor(n) * WG, e0: first, oo: outBase };
    const f: Record<string, number> = {};
    let ti = 0;
    args.forEach((a, k) => {
      if (typeof a === "number") f[`s${k}`] = a;
      else {
        const st = layout.strides[ti];
        if (st.length === 0) u[`a${k}_o`] = bases[ti] ?? a.offset + first;
        else stridedParams(`a${k}`, a.offset, st, u);
        ti++;
      }
    });
    if (!flat) dimParams(layout.dims, u);
    return { u, f };
  }
  // Arguments read at the output index run in windows that fit one binding (one run when all fit);
  // strided ones are bound whole (the backend refuses them, by name, above the binding limit).
  const perLane = b.traits.software ? PER_LANE : 1;
  const groupsFor = (n: number): number => Math.ceil(n / (WG * (n >= WG * perLane * 64 ? perLane : 1)));
  const limit = b.limits.maxStorageBufferBindingSize;
  const big = [out, ...tensors].some((x) => storageBytes(x.storage.numel, x.storage.dtype) > limit);
  const run = big ? Math.floor((limit - 1024) / 4 / WG) * WG : out.size;
  for (let first = 0; first < out.size; first += run) {
    const n = Math.min(run, out.size - first);
    const windows = tensors.map((x, ti) =>
      direct[ti] ? bindSpan(b, x.storage, x.offset + first, n) : { binding: x.storage, base: x.offset },
    );
    const o = bindSpan(b, out.storage, first, n);
    b.dispatch({
      key,
      params: paramsOf(
        first,
        n,
        o.base,
        windows.map((w) => w.base),
      ),
      inputs: windows.map((w) => w.binding),
      outputs: [o.binding],
      grid: groupsFor(n),
      wgsl,
    });
  }
  return out;
}
