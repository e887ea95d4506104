// Rotary position embedding, rotate-half convention (HF LLaMA/Mistral/Gemma): pairs (i, i + D/2)
// rotate by angle = f32(pos · inv_freq[i]) exactly as HF rounds it; backward rotates by −angle.
import { record } from "../graph.js";
import { ArgumentError, DTypeError, ShapeError, fmtShape } from "../errors.js";
import { emptyTensor, sameBackend, type Tensor } from "../tensor.js";
import { copyToContiguous } from "./copy.js";
import { cpuData, cpuValues, groups, inputDecl, isGpu, LINEAR_WG, MAIN, outputDecl, paramsDecl, requireF32 } from "./kernel.js";

export interface RopeOptions {
  /** Axis order of `x`: [B, T, H, D] (default) or [B, H, T, D]. */
  layout?: "bthd" | "bhtd";
  /** Axis order of the result (default: `layout`); "bhtd" from "bthd" input saves attention a transpose copy. */
  outLayout?: "bthd" | "bhtd";
  /** Position of token t is `offset + t` (default 0), unless `positions` is given. */
  offset?: number;
  /** Explicit i32 positions, [B, T] or [T]. */
  positions?: Tensor;
}

const WG = 64;

function ropeRaw(
  x: Tensor,
  invFreq: Tensor,
  o: Required<Pick<RopeOptions, "layout" | "outLayout" | "offset">> & { positions?: Tensor },
  sign: 1 | -1,
): Tensor {
  const [B, d1, d2, D] = x.shape;
  const [T, H] = o.layout === "bthd" ? [d1, d2] : [d2, d1];
  const half = D / 2;
  const y = emptyTensor(x.backend, o.outLayout === "bthd" ? [B, T, H, D] : [B, H, T, D]);
  const b = x.backend;
  const pos = o.positions;
  const posPerBatch = pos ? (pos.rank === 2 ? 1 : 0) : 0;
  const n = B * T * H * half;
  if (n === 0) return y;
  if (isGpu(b)) {
    const params = {
      u: {
        n,
        T,
        H,
        half,
        xo: x.offset,
        po: pos?.offset ?? 0,
        ppb: posPerBatch,
        bthd: o.layout === "bthd" ? 1 : 0,
        obthd: o.outLayout === "bthd" ? 1 : 0,
      },
      i: { off: o.offset },
      f: { sgn: sign },
    };
    const inputs = [x.storage, invFreq.storage, ...(pos ? [pos.storage] : [])];
    b.dispatch({
      key: `rope:${pos ? "pos" : "off"}`,
      params,
      inputs,
      outputs: [y.storage],
      grid: groups(n, WG),
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", "f32")}${inputDecl(2, "inv", "f32")}
${pos ? inputDecl(3, "pos", "i32") : ""}${outputDecl(pos ? 4 : 3, "y")}
fn reduce_angle(a: f32) -> f32 {
  // Cody-Waite: a - k·2π with 2π split into an exact head and a small tail.
  let k = round(a * 0.15915494309189535);
  return (a - k * 6.28125) - k * 0.0019353071795864769;
}
${MAIN(WG)} {
  let i = ${LINEAR_WG} * ${WG}u + lid.x;
  if (i >= p.n) { return; }
  let j = i % p.half;
  var r = i / p.half;
  let h = r % p.H; r = r / p.H;
  let t = r % p.T; let bb = r / p.T;
  ${pos ? "let ps = f32(pos[p.po + bb * p.T * p.ppb + t]);" : "let ps = f32(p.off + i32(t));"}
  let ang = reduce_angle(ps * inv[j]);
  let c = cos(ang);
  let s = sin(ang) * p.sgn;
  let rowT = ((bb * p.T + t) * p.H + h) * 2u * p.half;
  let rowH = ((bb * p.H + h) * p.T + t) * 2u * p.half;
  let row = select(rowH, rowT, p.bthd == 1u);
  let orow = select(rowH, rowT, p.obthd == 1u);
  let x1 = x[p.xo + row + j];
  let x2 = x[p.xo + row + j + p.half];
  y[orow + j] = x1 * c - x2 * s;
  y[orow + j + p.half] = x2 * c + x1 * s;
}`,
    });
    return y;
  }
  const xv = cpuValues(x);
  const iv = cpuValues(invFreq);
  const pv = pos ? cpuValues(pos) : null;
  const out = cpuData(y);
  for (let bb = 0; bb < B; bb++)
    for (let t = 0; t < T; t++) {
      const p = pv ? pv[bb * T * posPerBatch + t] : o.offset + t;
      for (let h = 0; h < H; h++) {
        const rowT = ((bb * T + t) * H + h) * D;
        const rowH = ((bb * H + h) * T + t) * D;
        const row = o.layout === "bthd" ? rowT : rowH;
        const orow = o.outLayout === "bthd" ? rowT : rowH;
        for (let j = 0; j < half; j++) {
          // HF computes the angle as an f32 product; the oracle rounds the same way.
          const ang = Math.fround(Math.fround(p) * Math.fround(iv[j]));
          const c = Math.cos(ang);
          const s = Math.sin(ang) * sign;
          const x1 = xv[row + j];
          const x2 = xv[row + j + half];
          out[orow + j] = x1 * c - x2 * s;
          out[orow + j + half] = x2 * c + x1 * s;
        }
      }
    }
  return y;
}

/**
 * Applies RoPE to `x` ([B, T, H, D] or [B, H, T, D]) with precomputed inverse frequencies
 * `invFreq` [D/2] (f32). Positions are `offset + t` or the i32 tensor `positions`.
 */
export function rope(x: Tensor, invFreq: Tensor, opts: RopeOptions = {}): Tensor {
  sameBackend("rope", x, invFreq, ...(opts.positions ? [opts.positions] : []));
  requireF32("rope", x, invFreq);
  if (x.rank !== 4) throw new ShapeError(`rope: expected x of rank 4 ([B, T, H, D] or [B, H, T, D]), got ${fmtShape(x.shape)}`);
  const D = x.shape[3];
  if (D % 2 !== 0 || invFreq.rank !== 1 || invFreq.shape[0] !== D / 2)
    throw new ShapeError(`rope: head dim ${D} needs invFreq of shape [${D / 2}], got ${fmtShape(invFreq.shape)}`);
  const layout = opts.layout ?? "bthd";
  const outLayout = opts.outLayout ?? layout;
  for (const l of [layout, outLayout])
    if (l !== "bthd" && l !== "bhtd") throw new ArgumentError(`rope: layout and outLayout must be "bthd" or "bhtd", got ${l}`);
  const T = layout === "bthd" ? x.shape[1] : x.shape[2];
  const pos = opts.positions;
  if (pos) {
    if (pos.dtype !== "i32") throw new DTypeError(`rope: positions must be i32, got ${pos.dtype}`);
    const ok = (pos.rank === 2 && pos.shape[0] === x.shape[0] && pos.shape[1] === T) || (pos.rank === 1 && pos.shape[0] === T);
    if (!ok)
      throw new ShapeError(`rope: positions ${fmtShape(pos.shape)} do not match [B, T] = [${x.shape[0]}, ${T}] of x ${fmtShape(x.shape)}`);
  }
  const flat = (t: Tensor) => (t.isContiguous ? t.viewAs(t.shape) : copyToContiguous(t));
  const positions = pos ? flat(pos) : undefined;
  const ic = flat(invFreq);
  const xc = flat(x);
  const y = ropeRaw(xc, ic, { layout, outLayout, offset: opts.offset ?? 0, positions }, 1);
  xc.dispose();
  return record(
    y,
    "rope",
    [x],
    (g, _needs, [is, ps]) => {
      const gc = flat(g);
      // The gradient rotates back by −angle and returns to the input's layout.
      const dx = ropeRaw(gc, is, { layout: outLayout, outLayout: layout, offset: opts.offset ?? 0, positions: ps }, -1);
      gc.dispose();
      return [dx];
    },
    positions ? [ic, positions] : [ic],
  );
}
