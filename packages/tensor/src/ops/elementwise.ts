// Elementwise ops, declared once in two tables (unary, binary): WGSL expression, float64 CPU
// expression and gradient side by side; `mapElementwise` (elementwise-kernel.ts) runs them all.
import { DTypeError } from "../errors.js";
import { record } from "../graph.js";
import { roundValues, type DType } from "../dtype.js";
import { sameShape } from "../shape.js";
import { emptyTensor, Tensor } from "../tensor.js";
import { copyToContiguous } from "./copy.js";
import { type Arg, mapElementwise } from "./elementwise-kernel.js";
import { cpuData, cpuValues, groups, inputDecl, isGpu, LINEAR_WG, MAIN, paramsDecl, requireFloat } from "./kernel.js";
import { sumTo } from "./reduce.js";

const WG = 64;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const sigmoidF64 = (x: number) => 1 / (1 + Math.exp(-x));

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
    cpu: sigmoidF64,
    gradWgsl: (_x, y, g) => `${g} * ${y} * (1.0 - ${y})`,
    gradCpu: (_x, y, g) => g * y * (1 - y),
  },
  silu: {
    wgsl: (x) => `${x} * sigmoid_s(${x})`,
    cpu: (x) => x * sigmoidF64(x),
    gradWgsl: (x, _y, g) => `${g} * sigmoid_s(${x}) * (1.0 + ${x} * (1.0 - sigmoid_s(${x})))`,
    gradCpu: (x, _y, g) => g * sigmoidF64(x) * (1 + x * (1 - sigmoidF64(x))),
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

/** Which of x and y = f(x) a gradient expression reads (the graph saves only those). */
function gradReads(gw: NonNullable<UnaryDef["gradWgsl"]>): { x: boolean; y: boolean } {
  const probe = gw("__x", "__y", "__g");
  return { x: probe.includes("__x"), y: probe.includes("__y") };
}

/** Applies a unary op from the table, with its gradient (saving only the x or y it reads). */
export function unary(op: UnaryOp, x: Tensor): Tensor {
  requireFloat(op, x);
  const def: UnaryDef = UNARY[op];
  const y = mapElementwise(op, [x], ([v]) => def.wgsl(v), def.cpu);
  const gw = def.gradWgsl;
  const gc = def.gradCpu;
  if (!gw || !gc) return y;
  const reads = gradReads(gw);
  const saved = [...(reads.x ? [x] : []), ...(reads.y ? [y] : [])];
  return record(
    y,
    op,
    [x],
    (g, _needs, held) => {
      const xs = reads.x ? held[0] : g;
      const ys = reads.y ? held[reads.x ? 1 : 0] : g;
      return [mapElementwise(`${op}_grad`, [xs, ys, g], ([xv, yv, gv]) => gw(xv, yv, gv), gc)];
    },
    saved,
  );
}

export const neg = (x: Tensor) => unary("neg", x);
export const exp = (x: Tensor) => unary("exp", x);
export const log = (x: Tensor) => unary("log", x);
export const sqrt = (x: Tensor) => unary("sqrt", x);
export const rsqrt = (x: Tensor) => unary("rsqrt", x);
export const tanh = (x: Tensor) => unary("tanh", x);
export const sigmoid = (x: Tensor) => unary("sigmoid", x);
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

/** Activations a gated MLP can use: act(gate)·up. */
export type GateActivation = "silu" | "gelu" | "geluExact";

/**
 * act(gate)·up in one kernel, as LLaMA's SwiGLU (silu) and Gemma's GeGLU (gelu) use it. Saves only
 * gate and up (the activation is recomputed in backward): d gate = g·up·act′(gate), d up = g·act(gate).
 */
export function gated(act: GateActivation, gate: Tensor, up: Tensor): Tensor {
  requireFloat("gated", gate, up);
  const def: UnaryDef = UNARY[act];
  const gw = def.gradWgsl!;
  const gc = def.gradCpu!;
  const y = mapElementwise(
    `gated_${act}`,
    [gate, up],
    ([a, b]) => `${def.wgsl(a)} * ${b}`,
    (a, b) => def.cpu(a) * b,
  );
  return record(
    y,
    `gated_${act}`,
    [gate, up],
    (g, needs, [gs, us]) => [
      needs[0]
        ? mapElementwise(
            `gated_${act}_dgate`,
            [gs, us, g],
            ([a, b, gv]) => gw(a, def.wgsl(a), `(${gv} * ${b})`),
            (a, b, gv) => gc(a, def.cpu(a), gv * b),
          )
        : null,
      needs[1]
        ? mapElementwise(
            `gated_${act}_dup`,
            [gs, g],
            ([a, gv]) => `${def.wgsl(a)} * ${gv}`,
            (a, gv) => def.cpu(a) * gv,
          )
        : null,
    ],
    [gate, up],
  );
}

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
function reduceGrad(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const r = sumTo(g, shape);
  g.dispose();
  return r;
}

function checkArgs(op: string, a: Arg, b: Arg): Tensor[] {
  const ts = [a, b].filter((x): x is Tensor => x instanceof Tensor);
  if (ts.length === 0) throw new DTypeError(`${op}: at least one argument must be a tensor`);
  requireFloat(op, ...ts);
  return ts;
}

/** The operands a gradient rule reads (numbers stay numbers), and the output when it needs it. */
interface Operands {
  a: Arg;
  b: Arg;
  y: Tensor | null;
}

/** A gradient rule: the unreduced gradient for operand `which` (0 = a, 1 = b), and what it reads. */
interface BinaryGrad {
  reads: "none" | "operands" | "all";
  grad: (g: Tensor, v: Operands, which: 0 | 1) => Tensor;
}

const pass = (g: Tensor) => g.viewAs(g.shape, g.strides, g.offset);

const GRADS: Partial<Record<BinaryOp, BinaryGrad>> = {
  add: { reads: "none", grad: pass },
  sub: { reads: "none", grad: (g, _v, w) => (w === 0 ? pass(g) : binaryRaw("mul", g, -1)) },
  mul: { reads: "operands", grad: (g, { a, b }, w) => binaryRaw("mul", g, w === 0 ? b : a) },
  div: {
    reads: "operands",
    grad: (g, { a, b }, w) =>
      w === 0
        ? binaryRaw("div", g, b)
        : mapElementwise(
            "div_grad_b",
            [g, a, b],
            ([gv, av, bv]) => `-${gv} * ${av} / (${bv} * ${bv})`,
            (gv, av, bv) => (-gv * av) / (bv * bv),
          ),
  },
  pow: {
    reads: "all",
    grad: (g, { a, b, y }, w) =>
      w === 0
        ? mapElementwise(
            "pow_grad_a",
            [g, a, b],
            ([gv, av, bv]) => `${gv} * ${bv} * pow_s(${av}, ${bv} - 1.0)`,
            (gv, av, bv) => gv * bv * av ** (bv - 1),
          )
        : mapElementwise(
            "pow_grad_b",
            [g, y!, a],
            ([gv, yv, av]) => `${gv} * ${yv} * log(${av})`,
            (gv, yv, av) => gv * yv * Math.log(av),
          ),
  },
  maximum: {
    reads: "operands",
    grad: (g, { a, b }, w) =>
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
  },
  minimum: {
    reads: "operands",
    grad: (g, { a, b }, w) =>
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
  },
};

/** A binary op with broadcasting; numbers are scalars. Gradients are reduced to each input's shape. */
export function binary(op: BinaryOp, a: Arg, b: Arg): Tensor {
  const ts = checkArgs(op, a, b);
  const y = binaryRaw(op, a, b);
  const rule = GRADS[op];
  if (!rule) return y;
  const shapes = [a, b].map((x) => (x instanceof Tensor ? x.shape : null));
  const saved = rule.reads === "none" ? [] : rule.reads === "operands" ? ts : [...ts, y];
  return record(
    y,
    op,
    ts,
    (g, needs, held) => {
      // Rebuild the operands from what the graph held (tensors) and the numbers themselves.
      let k = 0;
      const pick = (x: Arg): Arg => (x instanceof Tensor ? (rule.reads === "none" ? x : held[k++]) : x);
      const v: Operands = { a: pick(a), b: pick(b), y: rule.reads === "all" ? held[held.length - 1] : null };
      const out: (Tensor | null)[] = [];
      let ni = 0;
      ([0, 1] as const).forEach((w) => {
        const shape = shapes[w];
        if (!shape) return;
        out.push(needs[ni++] ? reduceGrad(rule.grad(g, v, w), shape) : null);
      });
      return out;
    },
    saved,
  );
}

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
  const shapes = [a, b].map((x) => (x instanceof Tensor ? x.shape : null));
  return record(
    y,
    "where",
    ts,
    (g, needs, [c]) => {
      const out: (Tensor | null)[] = [];
      let ni = 0;
      if (shapes[0])
        out.push(
          needs[ni++]
            ? reduceGrad(
                mapElementwise(
                  "where_grad_a",
                  [c, g],
                  ([cv, gv]) => `select(0.0, ${gv}, ${cv} != 0.0)`,
                  (cv, gv) => (cv !== 0 ? gv : 0),
                ),
                shapes[0],
              )
            : null,
        );
      if (shapes[1])
        out.push(
          needs[ni++]
            ? reduceGrad(
                mapElementwise(
                  "where_grad_b",
                  [c, g],
                  ([cv, gv]) => `select(${gv}, 0.0, ${cv} != 0.0)`,
                  (cv, gv) => (cv !== 0 ? 0 : gv),
                ),
                shapes[1],
              )
            : null,
        );
      return out;
    },
    [cond.viewAs(cond.shape, cond.strides, cond.offset)],
  );
}

/** A new view of `x` that passes gradients straight through. */
export function identity(x: Tensor): Tensor {
  const y = x.assertLive("identity").viewAs(x.shape, x.strides, x.offset);
  return record(y, "identity", [x], (g) => [pass(g)]);
}

/** A view of `x` outside the graph: no gradient flows back through it (like torch's detach). */
export const detach = (x: Tensor): Tensor => x.assertLive("detach").viewAs(x.shape, x.strides, x.offset);

// ---- casts -------------------------------------------------------------------------------------

/**
 * Converts dtype: f32 <-> i32 (truncation), f16/bf16 -> f32 (exact), and f32 -> f16/bf16 (round to
 * nearest even, like torch; no gradient: 16-bit tensors are frozen weights).
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  x.assertLive("cast");
  if (x.dtype === dtype) return identity(x);
  if (dtype === "bf16" || dtype === "f16") return toHalf(x, dtype);
  const y = mapElementwise(
    `cast_${dtype}`,
    [x],
    ([v]) => v,
    (v) => v,
    dtype as "f32" | "i32",
  );
  if (dtype === "f32" && x.dtype !== "i32") return record(y, "cast", [x], (g) => [pass(g)]);
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
      inputs: [src.storage],
      outputs: [out.storage],
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
