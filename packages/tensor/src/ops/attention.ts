// Causal scaled-dot-product attention with grouped-query heads, optional sliding window, padding
// mask and logit soft-capping: q·kᵀ (GQA folded into rows, no K/V copies) → fused masked softmax → ·v.
import { fmtShape, ShapeError } from "../errors.js";
import { record } from "../graph.js";
import { emptyTensor, sameBackend, type Tensor } from "../tensor.js";
import { copyToContiguous } from "./copy.js";
import {
  cpuData,
  cpuValues,
  inputDecl,
  isGpu,
  LINEAR_WG,
  MAIN,
  outputDecl,
  paramsDecl,
  requireF32,
  rowMaxSumExp,
  rowMaxSumExpWgsl,
  rowLanes,
} from "./kernel.js";
import { matmul } from "./matmul.js";
import { reshape } from "./movement.js";

export interface AttentionOptions {
  /** Score scale (default 1/√D; Gemma 2 uses query_pre_attn_scalar^−½). */
  scale?: number;
  /** Mask keys after the query's position (default true). */
  causal?: boolean;
  /** Sliding window W: query i sees keys i−W < j ≤ i (Mistral, Gemma 2). 0 = unlimited. */
  window?: number;
  /** [B, S] (f32 or i32): 0 marks padding keys no query may attend to. */
  keyMask?: Tensor;
  /** Soft-capping c: scores become c·tanh(s/c) before masking (Gemma 2). 0 = off. */
  softcap?: number;
  /** Absolute position of query 0 among the S keys (default S − T, i.e. queries are the last T keys). */
  queryOffset?: number;
}

interface MaskSpec {
  T: number;
  S: number;
  rowsPerBatch: number;
  scale: number;
  causal: boolean;
  window: number;
  softcap: number;
  qoff: number;
  keyMask?: Tensor;
}

/** Whether key j is visible to query row t of batch b (shared by the WGSL and CPU paths). */
const visibleWgsl = (m: MaskSpec) =>
  `fn visible(t: u32, j: u32, b: u32) -> bool {
  let qi = i32(t) + p.qoff;
  let jj = i32(j);
  ${m.causal ? "if (jj > qi) { return false; }" : ""}
  if (p.window > 0 && jj <= qi - p.window) { return false; }
  ${m.keyMask ? "if (f32(load_km(p.kmo + b * p.S + j)) == 0.0) { return false; }" : ""}
  return true;
}
fn score(x: f32) -> f32 {
  let s = x * p.scale;
  ${m.softcap > 0 ? "return p.cap * tanh(clamp(s / p.cap, -15.0, 15.0));" : "return s;"}
}
`;

function cpuVisible(m: MaskSpec, km: Float64Array | null, t: number, j: number, b: number): boolean {
  const qi = t + m.qoff;
  if (m.causal && j > qi) return false;
  if (m.window > 0 && j <= qi - m.window) return false;
  if (km && km[b * m.S + j] === 0) return false;
  return true;
}

function cpuScore(m: MaskSpec, x: number): number {
  const s = x * m.scale;
  return m.softcap > 0 ? m.softcap * Math.tanh(s / m.softcap) : s;
}

function maskParams(m: MaskSpec, rows: number, extra: Record<string, number> = {}) {
  return {
    u: { rows, T: m.T, S: m.S, rpb: m.rowsPerBatch, kmo: m.keyMask?.offset ?? 0, ...extra },
    i: { qoff: m.qoff, window: m.window },
    f: { scale: m.scale, cap: m.softcap },
  };
}

const maskKey = (m: MaskSpec) => `${m.causal ? "c" : ""}${m.softcap > 0 ? "s" : ""}${m.keyMask ? `k${m.keyMask.dtype}` : ""}`;

/** Fused scale → softcap → mask → softmax over rows of `x` [rows, S]; fully masked rows give zeros. */
function maskedSoftmaxForward(x: Tensor, m: MaskSpec): Tensor {
  const rows = x.size / m.S;
  const y = emptyTensor(x.backend, x.shape);
  const b = x.backend;
  if (rows === 0) return y;
  if (isGpu(b)) {
    const lanes = rowLanes(b, m.S);
    const wg = lanes.wg;
    const params = maskParams(m, rows);
    b.dispatch({
      key: `attn_softmax:${maskKey(m)}:${lanes.key}`,
      params,
      inputs: [x.storage, ...(m.keyMask ? [m.keyMask.storage] : [])],
      outputs: [y.storage],
      grid: rows,
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", "f32")}${m.keyMask ? inputDecl(2, "km", m.keyMask.dtype) : ""}
${outputDecl(m.keyMask ? 3 : 2, "y")}${lanes.lib}${visibleWgsl(m)}
${MAIN(wg)} {
  let r = ${LINEAR_WG};
  if (r >= p.rows) { return; }
  let t = r % p.T;
  let bb = r / p.rpb;
  let base = r * p.S;
  ${rowMaxSumExpWgsl({ wg, cols: "p.S", value: (j) => `score(x[base + ${j}])`, visible: (j) => `visible(t, ${j}, bb)` })}
  for (var j = lid.x; j < p.S; j += ${wg}u) {
    y[base + j] = select(0.0, exp(score(x[base + j]) - row_max) / row_sum, row_sum > 0.0 && visible(t, j, bb));
  }
}`,
    });
    return y;
  }
  const xv = cpuData(x);
  const km = m.keyMask ? cpuValues(m.keyMask) : null;
  const yo = cpuData(y);
  for (let r = 0; r < rows; r++) {
    const t = r % m.T;
    const bb = Math.floor(r / m.rowsPerBatch);
    const vis = (j: number) => cpuVisible(m, km, t, j, bb);
    const { max, sum } = rowMaxSumExp(m.S, (j) => cpuScore(m, xv[r * m.S + j]), vis);
    for (let j = 0; j < m.S; j++) yo[r * m.S + j] = sum > 0 && vis(j) ? Math.exp(cpuScore(m, xv[r * m.S + j]) - max) / sum : 0;
  }
  return y;
}

/** dx = y·(g − Σ g·y) · scale · (1 − (s/c)²) with s the capped score (masked entries have y = 0). */
function maskedSoftmaxBackward(x: Tensor, y: Tensor, g: Tensor, m: MaskSpec): Tensor {
  const rows = x.size / m.S;
  const gc = g.isContiguous ? g : copyToContiguous(g);
  const dx = emptyTensor(x.backend, x.shape);
  const b = x.backend;
  if (isGpu(b)) {
    const lanes = rowLanes(b, m.S);
    const wg = lanes.wg;
    const params = maskParams(m, rows, { go: gc.offset });
    b.dispatch({
      key: `attn_softmax_grad:${m.softcap > 0 ? "s" : ""}:${lanes.key}`,
      params,
      inputs: [x.storage, y.storage, gc.storage],
      outputs: [dx.storage],
      grid: rows,
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "x", "f32")}${inputDecl(2, "y", "f32")}${inputDecl(3, "g", "f32")}
${outputDecl(4, "dx")}${lanes.lib}
${MAIN(wg)} {
  let r = ${LINEAR_WG};
  if (r >= p.rows) { return; }
  let base = r * p.S;
  var acc = 0.0;
  for (var j = lid.x; j < p.S; j += ${wg}u) { acc += g[p.go + base + j] * y[base + j]; }
  let s = wg_sum(acc, lid.x);
  for (var j = lid.x; j < p.S; j += ${wg}u) {
    var d = y[base + j] * (g[p.go + base + j] - s) * p.scale;
    ${m.softcap > 0 ? "let th = tanh(clamp(x[base + j] * p.scale / p.cap, -15.0, 15.0)); d = d * (1.0 - th * th);" : ""}
    dx[base + j] = d;
  }
}`,
    });
  } else {
    const xv = cpuData(x);
    const yv = cpuData(y);
    const gv = cpuValues(gc);
    const o = cpuData(dx);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = 0; j < m.S; j++) s += gv[r * m.S + j] * yv[r * m.S + j];
      for (let j = 0; j < m.S; j++) {
        const i = r * m.S + j;
        let d = yv[i] * (gv[i] - s) * m.scale;
        if (m.softcap > 0) d *= 1 - Math.tanh((xv[i] * m.scale) / m.softcap) ** 2;
        o[i] = d;
      }
    }
  }
  if (gc !== g) gc.dispose();
  return dx;
}

/**
 * softmax(mask(cap(q·kᵀ·scale)))·v for q [B, Hq, T, D], k and v [B, Hkv, S, D] (Hq a multiple of
 * Hkv: query head h reads kv head ⌊h / (Hq/Hkv)⌋). Returns [B, Hq, T, D].
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  sameBackend("attention", q, k, v, ...(opts.keyMask ? [opts.keyMask] : []));
  requireF32("attention", q, k, v);
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4)
    throw new ShapeError(
      `attention: expected q [B, Hq, T, D], k and v [B, Hkv, S, D]; got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`,
    );
  const [B, Hq, T, D] = q.shape;
  const [Bk, Hkv, S, Dk] = k.shape;
  if (Bk !== B || Dk !== D || v.shape.some((d, i) => d !== k.shape[i]) || Hq % Hkv !== 0)
    throw new ShapeError(
      `attention: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} do not fit (need equal B and D, k = v, ` +
        `Hq a multiple of Hkv)`,
    );
  if (opts.keyMask && (opts.keyMask.rank !== 2 || opts.keyMask.shape[0] !== B || opts.keyMask.shape[1] !== S))
    throw new ShapeError(`attention: keyMask ${fmtShape(opts.keyMask.shape)} must be [B, S] = [${B}, ${S}]`);
  const G = Hq / Hkv;
  const spec: MaskSpec = {
    T,
    S,
    rowsPerBatch: Hkv * G * T,
    scale: opts.scale ?? 1 / Math.sqrt(D),
    causal: opts.causal ?? true,
    window: opts.window ?? 0,
    softcap: opts.softcap ?? 0,
    qoff: opts.queryOffset ?? S - T,
    keyMask: opts.keyMask
      ? opts.keyMask.isContiguous
        ? opts.keyMask.viewAs(opts.keyMask.shape)
        : copyToContiguous(opts.keyMask)
      : undefined,
  };
  // Fold the G query heads that share a kv head into rows: [B, Hkv, G·T, D].
  const qr = reshape(q, [B, Hkv, G * T, D]);
  const scores = matmul(qr, k, { transB: true });
  const probsRaw = maskedSoftmaxForward(scores, spec);
  spec.keyMask?.dispose(); // only the forward reads the padding mask: masked entries have zero probability
  const probs = record(probsRaw, "maskedSoftmax", [scores], (g, _needs, [sc, pr]) => [maskedSoftmaxBackward(sc, pr, g, spec)], [
    scores,
    probsRaw,
  ]);
  const out = matmul(probs, v);
  const y = reshape(out, [B, Hq, T, D]);
  for (const t of [qr, scores, probs, out]) t.dispose();
  return y;
}
