// Elementwise ops, declared once in two tables (unary, binary): WGSL expression, float64 CPU
// expression and gradient side by side. One strided, broadcasting kernel generator runs them all.
import { record } from "../autograd.js";
import type { Backend } from "../backend/backend.js";
import { paramsDecl, LINEAR_WG } from "../backend/webgpu.js";
import { type DType, roundValues } from "../dtype.js";
import { DTypeError } from "../errors.js";
import { broadcastShapes, broadcastStrides, collapseDims, contiguousStrides, sameShape, type Shape } from "../shape.js";
import { sameBackend, Tensor } from "../tensor.js";
import {
  cpuData,
  cpuValues,
  dimParams,
  emptyTensor,
  gpuOf,
  groups,
  inputDecl,
  isGpu,
  MAIN,
  outputDecl,
  requireFloat,
  stridedIndexWgsl,
  stridedOffsets,
  stridedParams,
} from "./kernel.js";
import { copyToContiguous } from "./movement.js";
import { sumTo } from "./reduce.js";

type Arg = Tensor | number;
const WG = 64;

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

// ---- the generic kernel --------------------------------------------------------------------------

/** WGSL helpers available to every elementwise expression. */
const WGSL_LIB = `
fn tanh_s(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }
fn sigmoid_s(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn erf_s(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t *
  (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}
fn gelu_grad(x: f32) -> f32 {
  let t = tanh_s(${SQRT_2_OVER_PI} * (x + ${GELU_C} * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * ${SQRT_2_OVER_PI} * (1.0 + ${3 * GELU_C} * x * x);
}
fn pcg(v: u32) -> u32 { let s = v * 747796405u + 2891336453u; let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u; return (w >> 22u) ^ w; }
fn pow_s(x: f32, e: f32) -> f32 {
  if (e == 0.0) { return 1.0; }
  if (e == round(e)) { let r = pow(abs(x), e); return select(r, -r, x < 0.0 && abs(e % 2.0) == 1.0); }
  return pow(x, e);
}
`;

/**
 * Runs `expr` over broadcast arguments into a fresh contiguous tensor. `expr` gets the WGSL names
 * of the arguments (tensors are loaded as f32 `v<k>`, numbers are uniforms `p.s<k>`); the output
 * element index is `i` (u32) in WGSL and the extra last argument of `cpuExpr`.
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
  if (isGpu(b)) {
    // Layout per tensor argument: read at the output index (contiguous, same shape) or strided.
    const same = tensors.every((t) => t.isContiguous && sameShape(t.shape, shape));
    const { shape: dims, strides } = same
      ? { shape: [out.size], strides: tensors.map(() => [1]) }
      : (() => {
          const c = collapseDims(shape, [contiguousStrides(shape), ...tensors.map((t) => broadcastStrides(t.shape, t.strides, shape))]);
          return { shape: c.shape, strides: c.strides.slice(1).map((st) => (st.every((v, i) => v === c.strides[0][i]) ? [] : st)) };
        })();
    const rank = dims.length;
    const u: Record<string, number> = { n: out.size };
    const f: Record<string, number> = {};
    let key = `ew:${op}:${outDtype}:${same ? "flat" : `r${rank}`}`;
    let t = 0;
    for (let k = 0; k < args.length; k++) {
      const a = args[k];
      if (typeof a === "number") {
        f[`s${k}`] = a;
        key += ":k";
        continue;
      }
      const st = strides[t++];
      const direct = same || st.length === 0;
      if (direct) u[`a${k}_o`] = a.offset;
      else stridedParams(`a${k}`, a.offset, st, u);
      key += `:${a.dtype}${direct ? "c" : "s"}`;
    }
    if (!same) dimParams(dims, u);
    const params = { u, f };
    b.dispatch({
      key,
      params,
      inputs: tensors.map(gpuOf),
      outputs: [gpuOf(out)],
      grid: groups(out.size, WG),
      wgsl: () => {
        // Built once per pipeline key: declarations, index arithmetic, loads, the expression.
        let decls = "";
        let body = "";
        const names: string[] = [];
        let bind = 1;
        args.forEach((a, k) => {
          if (typeof a === "number") {
            names.push(`p.s${k}`);
            return;
          }
          const nm = `a${k}`;
          decls += inputDecl(bind++, nm, a.dtype);
          body += `a${k}_o` in u && !(`a${k}_s0` in u) ? `let ${nm}_off = p.${nm}_o + i;\n` : stridedIndexWgsl(nm, rank, "i");
          body += `let v${k} = f32(load_${nm}(${nm}_off));\n`;
          names.push(`v${k}`);
        });
        const store = outDtype === "i32" ? `i32(${wgslExpr(names)})` : wgslExpr(names);
        return `${paramsDecl(params)}${decls}${outputDecl(bind, "out", outDtype === "i32" ? "i32" : "f32")}${WGSL_LIB}
${MAIN(WG)} {
  let i = ${LINEAR_WG} * ${WG}u + lid.x;
  if (i >= p.n) { return; }
${body}  out[i] = ${store};
}`;
      },
    });
    return out;
  }
  // CPU oracle: float64 over broadcast views.
  const n = out.size;
  const o = cpuData(out);
  const readers = args.map((a) => {
    if (typeof a === "number") return () => a;
    const d = cpuData(a);
    const offs = stridedOffsets(shape, broadcastStrides(a.shape, a.strides, shape), a.offset);
    return (i: number) => d[offs[i]];
  });
  const vals = new Array<number>(args.length);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < readers.length; k++) vals[k] = readers[k](i);
    const r = cpuExpr(...vals, i);
    o[i] = outDtype === "i32" ? Math.trunc(r) : r;
  }
  return out;
}

// ---- unary ops ---------------------------------------------------------------------------------

interface UnaryDef {
  wgsl: (x: string) => string;
  cpu: (x: number) => number;
  /** dL/dx from x, y = f(x) and g = dL/dy; omitted for ops without a gradient. */
  gradWgsl?: (x: string, y: string, g: string) => string;
  gradCpu?: (x: number, y: number, g: number) => number;
}

export const UNARY = {
  neg: { wgsl: (x) => `-${x}`, cpu: (x) => -x, gradWgsl: (_x, _y, g) => `-${g}`, gradCpu: (_x, _y, g) => -g },
  exp: { wgsl: (x) => `exp(${x})`, cpu: Math.exp, gradWgsl: (_x, y, g) => `${g} * ${y}`, gradCpu: (_x, y, g) => g * y },
  log: { wgsl: (x) => `log(${x})`, cpu: Math.log, gradWgsl: (x, _y, g) => `${g} / ${x}`, gradCpu: (x, _y, g) => g / x },
  sqrt: { wgsl: (x) => `sqrt(${x})`, cpu: Math.sqrt, gradWgsl: (_x, y, g) => `0.5 * ${g} / ${y}`, gradCpu: (_x, y, g) => (0.5 * g) / y },
  rsqrt: {
    wgsl: (x) => `inverseSqrt(${x})`,
    cpu: (x) => 1 / Math.sqrt(x),
    gradWgsl: (x, y, g) => `-0.5 * ${g} * ${y} / ${x}`,
    gradCpu: (x, y, g) => (-0.5 * g * y) / x,
  },
  tanh: {
    wgsl: (x) => `tanh_s(${x})`,
    cpu: Math.tanh,
    gradWgsl: (_x, y, g) => `${g} * (1.0 - ${y} * ${y})`,
    gradCpu: (_x, y, g) => g * (1 - y * y),
  },
  sigmoid: {
    wgsl: (x) => `sigmoid_s(${x})`,
    cpu: sigmoid,
    gradWgsl: (_x, y, g) => `${g} * ${y} * (1.0 - ${y})`,
    gradCpu: (_x, y, g) => g * y * (1 - y),
  },
  silu: {
    wgsl: (x) => `${x} * sigmoid_s(${x})`,
    cpu: (x) => x * sigmoid(x),
    gradWgsl: (x, _y, g) => `${g} * sigmoid_s(${x}) * (1.0 + ${x} * (1.0 - sigmoid_s(${x})))`,
    gradCpu: (x, _y, g) => g * sigmoid(x) * (1 + x * (1 - sigmoid(x))),
  },
  gelu: {
    // tanh approximation (HF "gelu_pytorch_tanh", Gemma's activation)
    wgsl: (x) => `0.5 * ${x} * (1.0 + tanh_s(${SQRT_2_OVER_PI} * (${x} + ${GELU_C} * ${x} * ${x} * ${x})))`,
    cpu: (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_C * x ** 3))),
    gradWgsl: (x, _y, g) => `${g} * gelu_grad(${x})`,
    gradCpu: (x, _y, g) => {
      const t = Math.tanh(SQRT_2_OVER_PI * (x + GELU_C * x ** 3));
      return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_C * x * x));
    },
  },
  geluExact: {
    wgsl: (x) => `0.5 * ${x} * (1.0 + erf_s(${x} * ${Math.SQRT1_2}))`,
    cpu: (x) => 0.5 * x * (1 + erf(x * Math.SQRT1_2)),
    gradWgsl: (x, _y, g) => `${g} * (0.5 * (1.0 + erf_s(${x} * ${Math.SQRT1_2})) + ${x} * exp(-0.5 * ${x} * ${x}) * ${INV_SQRT_2PI})`,
    gradCpu: (x, _y, g) => g * (0.5 * (1 + erf(x * Math.SQRT1_2)) + x * Math.exp(-0.5 * x * x) * INV_SQRT_2PI),
  },
  abs: { wgsl: (x) => `abs(${x})`, cpu: Math.abs, gradWgsl: (x, _y, g) => `${g} * sign(${x})`, gradCpu: (x, _y, g) => g * Math.sign(x) },
  relu: {
    wgsl: (x) => `max(${x}, 0.0)`,
    cpu: (x) => Math.max(x, 0),
    gradWgsl: (x, _y, g) => `select(0.0, ${g}, ${x} > 0.0)`,
    gradCpu: (x, _y, g) => (x > 0 ? g : 0),
  },
  square: { wgsl: (x) => `${x} * ${x}`, cpu: (x) => x * x, gradWgsl: (x, _y, g) => `2.0 * ${x} * ${g}`, gradCpu: (x, _y, g) => 2 * x * g },
  sin: { wgsl: (x) => `sin(${x})`, cpu: Math.sin, gradWgsl: (x, _y, g) => `${g} * cos(${x})`, gradCpu: (x, _y, g) => g * Math.cos(x) },
  cos: { wgsl: (x) => `cos(${x})`, cpu: Math.cos, gradWgsl: (x, _y, g) => `-${g} * sin(${x})`, gradCpu: (x, _y, g) => -g * Math.sin(x) },
  sign: { wgsl: (x) => `sign(${x})`, cpu: Math.sign },
  floor: { wgsl: (x) => `floor(${x})`, cpu: Math.floor },
  isFinite: { wgsl: (x) => `select(0.0, 1.0, abs(${x}) <= 3.4028234663852886e38)`, cpu: (x) => (Number.isFinite(x) ? 1 : 0) },
} satisfies Record<string, UnaryDef>;

export type UnaryOp = keyof typeof UNARY;

/** Applies a unary op from the table, with its gradient. */
export function unary(op: UnaryOp, x: Tensor): Tensor {
  requireFloat(op, x);
  const def: UnaryDef = UNARY[op];
  const y = mapElementwise(op, [x], ([v]) => def.wgsl(v), def.cpu);
  const gw = def.gradWgsl;
  const gc = def.gradCpu;
  if (!gw || !gc) return y;
  return record(y, op, [x], (g) => [mapElementwise(`${op}_grad`, [x, y, g], ([xv, yv, gv]) => gw(xv, yv, gv), gc)]);
}

export const neg = (x: Tensor) => unary("neg", x);
export const exp = (x: Tensor) => unary("exp", x);
export const log = (x: Tensor) => unary("log", x);
export const sqrt = (x: Tensor) => unary("sqrt", x);
export const rsqrt = (x: Tensor) => unary("rsqrt", x);
export const tanh = (x: Tensor) => unary("tanh", x);
export const sigmoidOp = (x: Tensor) => unary("sigmoid", x);
export const silu = (x: Tensor) => unary("silu", x);
/** GELU, tanh approximation (HF `gelu_pytorch_tanh`). */
export const gelu = (x: Tensor) => unary("gelu", x);
/** GELU with the exact erf (HF `gelu`). */
export const geluExact = (x: Tensor) => unary("geluExact", x);
export const abs = (x: Tensor) => unary("abs", x);
export const relu = (x: Tensor) => unary("relu", x);
export const square = (x: Tensor) => unary("square", x);
export const sin = (x: Tensor) => unary("sin", x);
export const cos = (x: Tensor) => unary("cos", x);

// ---- binary ops --------------------------------------------------------------------------------

interface BinaryDef {
  wgsl: (a: string, b: string) => string;
  cpu: (a: number, b: number) => number;
}

export const BINARY = {
  add: { wgsl: (a, b) => `${a} + ${b}`, cpu: (a, b) => a + b },
  sub: { wgsl: (a, b) => `${a} - ${b}`, cpu: (a, b) => a - b },
  mul: { wgsl: (a, b) => `${a} * ${b}`, cpu: (a, b) => a * b },
  div: { wgsl: (a, b) => `${a} / ${b}`, cpu: (a, b) => a / b },
  pow: { wgsl: (a, b) => `pow_s(${a}, ${b})`, cpu: (a, b) => a ** b },
  maximum: { wgsl: (a, b) => `max(${a}, ${b})`, cpu: (a, b) => Math.max(a, b) },
  minimum: { wgsl: (a, b) => `min(${a}, ${b})`, cpu: (a, b) => Math.min(a, b) },
  eq: { wgsl: (a, b) => `select(0.0, 1.0, ${a} == ${b})`, cpu: (a, b) => +(a === b) },
  ne: { wgsl: (a, b) => `select(0.0, 1.0, ${a} != ${b})`, cpu: (a, b) => +(a !== b) },
  lt: { wgsl: (a, b) => `select(0.0, 1.0, ${a} < ${b})`, cpu: (a, b) => +(a < b) },
  le: { wgsl: (a, b) => `select(0.0, 1.0, ${a} <= ${b})`, cpu: (a, b) => +(a <= b) },
  gt: { wgsl: (a, b) => `select(0.0, 1.0, ${a} > ${b})`, cpu: (a, b) => +(a > b) },
  ge: { wgsl: (a, b) => `select(0.0, 1.0, ${a} >= ${b})`, cpu: (a, b) => +(a >= b) },
} satisfies Record<string, BinaryDef>;

export type BinaryOp = keyof typeof BINARY;

function binaryRaw(op: BinaryOp, a: Arg, b: Arg): Tensor {
  const def: BinaryDef = BINARY[op];
  return mapElementwise(op, [a, b], ([x, y]) => def.wgsl(x, y), def.cpu);
}

/** Sums a broadcast gradient back to an operand's shape (and frees the broadcast one). */
function reduceGrad(g: Tensor, a: Arg): Tensor | null {
  if (typeof a === "number") {
    g.dispose();
    return null;
  }
  if (sameShape(g.shape, a.shape)) return g;
  const r = sumTo(g, a.shape);
  g.dispose();
  return r;
}

function checkArgs(op: string, a: Arg, b: Arg): Tensor[] {
  const ts = [a, b].filter((x): x is Tensor => x instanceof Tensor);
  if (ts.length === 0) throw new DTypeError(`${op}: at least one argument must be a tensor`);
  requireFloat(op, ...ts);
  return ts;
}

/** A binary op with broadcasting; numbers are scalars. Gradients are reduced to each input's shape. */
export function binary(op: BinaryOp, a: Arg, b: Arg): Tensor {
  const ts = checkArgs(op, a, b);
  const y = binaryRaw(op, a, b);
  const grads = GRADS[op];
  if (!grads) return y;
  const inputs = ts;
  return record(y, op, inputs, (g, needs) => {
    const ga = a instanceof Tensor && needs[0] ? grads(g, a, b, y, 0) : null;
    const gb = b instanceof Tensor && needs[inputs.length - 1] ? grads(g, a, b, y, 1) : null;
    const out: (Tensor | null)[] = [];
    if (a instanceof Tensor) out.push(ga ? reduceGrad(ga, a) : null);
    if (b instanceof Tensor) out.push(gb ? reduceGrad(gb, b) : null);
    return out;
  });
}

/** Unreduced gradient of `op` with respect to operand `which` (0 = a, 1 = b). */
const GRADS: Partial<Record<BinaryOp, (g: Tensor, a: Arg, b: Arg, y: Tensor, which: 0 | 1) => Tensor>> = {
  add: (g) => g.viewAs(g.shape, g.strides, g.offset),
  sub: (g, _a, _b, _y, w) => (w === 0 ? g.viewAs(g.shape, g.strides, g.offset) : unary("neg", g)),
  mul: (g, a, b, _y, w) => binaryRaw("mul", g, w === 0 ? b : a),
  div: (g, a, b, _y, w) =>
    w === 0
      ? binaryRaw("div", g, b)
      : mapElementwise(
          "div_grad_b",
          [g, a, b],
          ([gv, av, bv]) => `-${gv} * ${av} / (${bv} * ${bv})`,
          (gv, av, bv) => (-gv * av) / (bv * bv),
        ),
  pow: (g, a, b, y, w) =>
    w === 0
      ? mapElementwise(
          "pow_grad_a",
          [g, a, b],
          ([gv, av, bv]) => `${gv} * ${bv} * pow_s(${av}, ${bv} - 1.0)`,
          (gv, av, bv) => gv * bv * av ** (bv - 1),
        )
      : mapElementwise(
          "pow_grad_b",
          [g, y, a],
          ([gv, yv, av]) => `${gv} * ${yv} * log(${av})`,
          (gv, yv, av) => gv * yv * Math.log(av),
        ),
  maximum: (g, a, b, _y, w) =>
    w === 0
      ? mapElementwise(
          "max_grad_a",
          [g, a, b],
          ([gv, av, bv]) => `select(0.0, ${gv}, ${av} >= ${bv})`,
          (gv, av, bv) => (av >= bv ? gv : 0),
        )
      : mapElementwise(
          "max_grad_b",
          [g, a, b],
          ([gv, av, bv]) => `select(0.0, ${gv}, ${bv} > ${av})`,
          (gv, av, bv) => (bv > av ? gv : 0),
        ),
  minimum: (g, a, b, _y, w) =>
    w === 0
      ? mapElementwise(
          "min_grad_a",
          [g, a, b],
          ([gv, av, bv]) => `select(0.0, ${gv}, ${av} <= ${bv})`,
          (gv, av, bv) => (av <= bv ? gv : 0),
        )
      : mapElementwise(
          "min_grad_b",
          [g, a, b],
          ([gv, av, bv]) => `select(0.0, ${gv}, ${bv} < ${av})`,
          (gv, av, bv) => (bv < av ? gv : 0),
        ),
};

export const add = (a: Arg, b: Arg) => binary("add", a, b);
export const sub = (a: Arg, b: Arg) => binary("sub", a, b);
export const mul = (a: Arg, b: Arg) => binary("mul", a, b);
export const div = (a: Arg, b: Arg) => binary("div", a, b);
export const pow = (a: Arg, b: Arg) => binary("pow", a, b);
export const maximum = (a: Arg, b: Arg) => binary("maximum", a, b);
export const minimum = (a: Arg, b: Arg) => binary("minimum", a, b);
export const eq = (a: Arg, b: Arg) => binary("eq", a, b);
export const ne = (a: Arg, b: Arg) => binary("ne", a, b);
export const lt = (a: Arg, b: Arg) => binary("lt", a, b);
export const le = (a: Arg, b: Arg) => binary("le", a, b);
export const gt = (a: Arg, b: Arg) => binary("gt", a, b);
export const ge = (a: Arg, b: Arg) => binary("ge", a, b);

/** Clamps to [lo, hi]; the gradient passes where lo <= x <= hi. */
export const clamp = (x: Tensor, lo: number, hi: number): Tensor => minimum(maximum(x, lo), hi);

/** `cond ? a : b` elementwise (cond nonzero = true), broadcasting all three. */
export function where(cond: Tensor, a: Arg, b: Arg): Tensor {
  const ts = checkArgs("where", a, b);
  const y = mapElementwise(
    "where",
    [cond, a, b],
    ([c, x, z]) => `select(${z}, ${x}, ${c} != 0.0)`,
    (c, x, z) => (c !== 0 ? x : z),
  );
  return record(y, "where", ts, (g, needs) => {
    const out: (Tensor | null)[] = [];
    if (a instanceof Tensor)
      out.push(
        needs[0]
          ? reduceGrad(
              mapElementwise(
                "where_grad_a",
                [cond, g],
                ([c, gv]) => `select(0.0, ${gv}, ${c} != 0.0)`,
                (c, gv) => (c !== 0 ? gv : 0),
              ),
              a,
            )
          : null,
      );
    if (b instanceof Tensor)
      out.push(
        needs[out.length]
          ? reduceGrad(
              mapElementwise(
                "where_grad_b",
                [cond, g],
                ([c, gv]) => `select(${gv}, 0.0, ${c} != 0.0)`,
                (c, gv) => (c !== 0 ? 0 : gv),
              ),
              b,
            )
          : null,
      );
    return out;
  });
}

/** A new view of `x` that passes gradients straight through. */
export function identity(x: Tensor): Tensor {
  const y = x.check("identity").viewAs(x.shape, x.strides, x.offset);
  return record(y, "identity", [x], (g) => [g.viewAs(g.shape, g.strides, g.offset)]);
}

// ---- creation and casts ------------------------------------------------------------------------

/** A new tensor filled with `value`. */
export function fill(backend: Backend, shape: Shape, value: number, dtype: "f32" | "i32" = "f32"): Tensor {
  const out = emptyTensor(backend, shape, dtype);
  if (out.size === 0) return out;
  if (isGpu(backend)) {
    const params = { u: { n: out.size }, f: { v: value } };
    backend.dispatch({
      key: `fill:${dtype}`,
      params,
      inputs: [],
      outputs: [gpuOf(out)],
      grid: groups(out.size, WG),
      wgsl: () => `${paramsDecl(params)}${outputDecl(1, "out", dtype)}
${MAIN(WG)} {
  let i = ${LINEAR_WG} * ${WG}u + lid.x;
  if (i < p.n) { out[i] = ${dtype}(p.v); }
}`,
    });
  } else cpuData(out).fill(dtype === "i32" ? Math.trunc(value) : value);
  return out;
}

/**
 * Converts dtype: f32 <-> i32 (truncation), f16/bf16 -> f32 (exact), and f32 -> f16/bf16 (round to
 * nearest even, like torch; no gradient: 16-bit tensors are frozen weights).
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  x.check("cast");
  if (x.dtype === dtype) return identity(x);
  if (dtype === "bf16" || dtype === "f16") return toHalf(x, dtype);
  const y = mapElementwise(
    `cast_${dtype}`,
    [x],
    ([v]) => v,
    (v) => v,
    dtype as "f32" | "i32",
  );
  if (dtype === "f32" && x.dtype !== "i32") return record(y, "cast", [x], (g) => [g.viewAs(g.shape, g.strides, g.offset)]);
  return y;
}

/** f32 -> packed 16-bit storage, one invocation per pair of elements. */
function toHalf(x: Tensor, dtype: "bf16" | "f16"): Tensor {
  if (x.dtype !== "f32") throw new DTypeError(`cast: ${x.dtype} -> ${dtype} is not supported; cast to f32 first`);
  const src = x.isContiguous ? x : copyToContiguous(x);
  const out = emptyTensor(x.backend, x.shape, dtype);
  const n = out.size;
  const b = x.backend;
  if (n > 0 && isGpu(b)) {
    const params = { u: { n, xo: src.offset } };
    // bf16: round-to-nearest-even on the bits (NaN kept quiet); f16: the same on the half layout.
    const pack =
      dtype === "bf16"
        ? `fn h(v: f32) -> u32 { let b = bitcast<u32>(v); if ((b & 0x7fffffffu) > 0x7f800000u) { return ((b >> 16u) | 0x40u) & ` +
          `0xffffu; } return ((b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u) & 0xffffu; }`
        : `fn h(v: f32) -> u32 { return pack2x16float(vec2<f32>(v, 0.0)) & 0xffffu; }`;
    b.dispatch({
      key: `to_${dtype}`,
      params,
      inputs: [gpuOf(src)],
      outputs: [gpuOf(out)],
      grid: groups(Math.ceil(n / 2), WG),
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", "f32")}@group(0) @binding(2) var<storage, read_write> out: array<u32>;
${pack}
${MAIN(WG)} {
  let j = ${LINEAR_WG} * ${WG}u + lid.x;
  let i = 2u * j;
  if (i >= p.n) { return; }
  var hi = 0u;
  if (i + 1u < p.n) { hi = h(x[p.xo + i + 1u]); }
  out[j] = h(x[p.xo + i]) | (hi << 16u);
}`,
    });
  } else if (n > 0) cpuData(out).set(roundValues(dtype, cpuValues(src)));
  if (src !== x) src.dispose();
  return out;
}

// ---- float64 erf for the CPU oracle --------------------------------------------------------------

/** erf(x) to ~1e-15: Taylor series below 2.5, continued fraction for erfc above. */
export function erf(x: number): number {
  const z = Math.abs(x);
  if (z < 2.5) {
    let term = z;
    let sum = z;
    for (let n = 1; n < 80; n++) {
      term *= (-z * z) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * ((2 / Math.sqrt(Math.PI)) * sum);
  }
  // erfc(z) = exp(-z²)/√π · 1/(z + 1/2/(z + 1/(z + 3/2/(z + ...)))) via Lentz
  let f = z;
  let c = z;
  let d = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    d = z + an * d;
    d = 1 / d;
    c = z + an / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}
