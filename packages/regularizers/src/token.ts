// The token terms (CE, temperature KL, entropy) of many rows in one pass, on materialised logits or
// fused over the vocabulary: chunks of rows through the LM head, gradient w.r.t. the hidden states formed in the pass.
import * as T from "@balora/tensor";
import { ArgumentError, ShapeError, type Tensor } from "@balora/tensor";
import { emptyTensor } from "@balora/tensor/kernel";
import { ROW_VALUES, rowPass } from "./fused/rows.js";
import { isFactored } from "./source.js";
import type { LogitsSource } from "./types.js";

export interface TokenTermsRequest {
  student: LogitsSource;
  teacher: LogitsSource | null;
  /** i32 targets per row (−100 = ignored), the shape of the student's rows; needed when `ce`. */
  targets: Tensor | null;
  /** f32 mask per row (weight of the KL and entropy rows). */
  mask: Tensor;
  /** f32 [3] device weights of Σ ce_r, Σ KL_r, Σ H_r in `total` (normalisers, λ, τ² and signs included). */
  weights: Tensor;
  ce: boolean;
  kl: boolean;
  ent: boolean;
  tau: number;
  /** Top-k entropy (0 = full vocabulary). */
  topK: number;
  /** Fused path: rows per chunk (default: as many as fit 16 MiB of f32 logits, at least 16). */
  chunkRows?: number;
}

export interface TokenTermsResult {
  /** w0·Σce + w1·ΣKL + w2·ΣH: a scalar with autograd to the student's logits or hidden states. */
  total: Tensor;
  /** [N, 3] per-row ce, KL·mask, H·mask (no autograd). */
  rows: Tensor;
}

/** Default rows per chunk of the fused path for a vocabulary of V: 16 MiB of f32 logits, at least 16 rows. */
export const defaultChunkRows = (V: number): number => Math.max(16, Math.floor((16 * 2 ** 20) / (4 * V) / 16) * 16);

/** A contiguous [n] or [n, cols] view of `t` (through a copy when `t` is strided); no autograd. */
export const flatRows = (t: Tensor, cols: number | null): Tensor => {
  const n = cols === null ? t.size : t.size / cols;
  const shape = cols === null ? [n] : [n, cols];
  if (t.isContiguous) return t.viewAs(shape);
  const c = T.copyToContiguous(t);
  const v = c.viewAs(shape);
  c.dispose();
  return v;
};

/** Largest top-k of the entropy (the row pass keeps k values per lane in registers). */
export const MAX_TOP_K = 64;

/** Runs the token terms for one batch. */
export function tokenTerms(req: TokenTermsRequest): TokenTermsResult {
  const { student, teacher } = req;
  if (req.kl && !teacher) throw new ArgumentError("consistency: needs the teacher's logits (pass teacher)");
  if (!Number.isInteger(req.topK) || req.topK < 0 || req.topK > MAX_TOP_K)
    throw new ArgumentError(`token terms: topK must be an integer in [0, ${MAX_TOP_K}] (0 = full vocabulary), got ${req.topK}`);
  if (teacher && isFactored(teacher) !== isFactored(student))
    throw new ArgumentError("token terms: student and teacher must both be materialised logits or both factored");
  return isFactored(student) ? fused(req) : materialised(req);
}

/** g·d under `shape` (the saved forward-time gradient times the upstream scalar), no stray intermediate. */
function scaledGrad(d: Tensor, g: Tensor, shape: readonly number[]): Tensor {
  const m = T.mul(d, g);
  const r = T.reshape(m, shape);
  if (r !== m) m.dispose();
  return r;
}

function checkRows(what: string, t: Tensor | null, rows: number): void {
  if (t && t.size !== rows) throw new ShapeError(`${what}: expected ${rows} rows, got [${t.shape.join(", ")}]`);
}

function totalOf(vals: Tensor, weights: Tensor): Tensor {
  return T.noGrad(() => {
    const w = T.mul(vals, weights);
    const s = T.sum(w);
    w.dispose();
    return s;
  });
}

function materialised(req: TokenTermsRequest): TokenTermsResult {
  const zs0 = req.student as Tensor;
  const V = zs0.shape[zs0.rank - 1];
  const N = zs0.size / V;
  const zt0 = req.teacher as Tensor | null;
  if (zt0 && zt0.size !== zs0.size)
    throw new ShapeError(`consistency: teacher logits [${zt0.shape}] and student logits [${zs0.shape}] differ`);
  checkRows("targets", req.targets, N);
  checkRows("mask", req.mask, N);
  const wantGrad = T.isGradEnabled() && zs0.requiresGrad;
  const { dz, vals } = T.noGrad(() => {
    const zs = flatRows(zs0, V);
    // The pass overwrites its rows with the gradient, so it runs on a copy (which becomes the saved gradient).
    const dz = zs.dtype === "f32" && !wantGrad ? zs : zs.dtype === "f32" ? T.copyToContiguous(zs) : T.cast(zs, "f32");
    if (dz !== zs) zs.dispose();
    const zt = req.kl && zt0 ? flatRows(zt0, V) : null;
    const targets = req.targets ? flatRows(req.targets, null) : null;
    const mask = flatRows(req.mask, null);
    const vals = emptyTensor(zs0.backend, [N, ROW_VALUES]);
    rowPass(
      { ce: req.ce, kl: req.kl, ent: req.ent, tau: req.tau, topK: req.topK, softcap: null, scale: 1, write: wantGrad },
      { zs: dz, zt, targets, mask, weights: req.weights, vals, row0: 0 },
    );
    for (const t of [zt, targets, mask]) t?.dispose();
    return { dz, vals };
  });
  const total = totalOf(vals, req.weights);
  if (!wantGrad) {
    if (dz !== zs0) dz.dispose();
    return { total, rows: vals };
  }
  const out = T.record(total, "tokenTerms", [zs0], (g, _needs, [d]) => [scaledGrad(d, g, zs0.shape)], [dz]);
  return { total: out, rows: vals };
}

function fused(req: TokenTermsRequest): TokenTermsResult {
  const student = req.student as Extract<LogitsSource, { kind: "factored" }>;
  const teacher = req.teacher as Extract<LogitsSource, { kind: "factored" }> | null;
  const { head } = student;
  if (teacher && teacher.head !== head) throw new ArgumentError("fused head: the teacher must use the student's LM head (the same LmHead)");
  const W = head.weight;
  const [V, h] = W.shape;
  const hidden = student.hidden;
  const N = hidden.size / h;
  if (teacher && teacher.hidden.size !== hidden.size)
    throw new ShapeError(`consistency: teacher hidden states [${teacher.hidden.shape}] and student's [${hidden.shape}] differ`);
  checkRows("targets", req.targets, N);
  checkRows("mask", req.mask, N);
  const chunk = req.chunkRows ?? defaultChunkRows(V);
  if (!Number.isInteger(chunk) || chunk < 1) throw new ArgumentError(`fused head: chunkRows must be a positive integer, got ${chunk}`);
  const wantGrad = T.isGradEnabled() && hidden.requiresGrad;
  const { vals, dh } = T.noGrad(() => {
    const hs = flatRows(hidden, h);
    const ht = req.kl && teacher ? flatRows(teacher.hidden, h) : null;
    const targets = req.targets ? flatRows(req.targets, null) : null;
    const mask = flatRows(req.mask, null);
    const vals = emptyTensor(hidden.backend, [N, ROW_VALUES]);
    const dh = wantGrad ? emptyTensor(hidden.backend, [N, h]) : null;
    for (let r0 = 0; r0 < N; r0 += chunk) {
      const n = Math.min(chunk, N - r0);
      const rows = (t: Tensor) => T.narrow(t, 0, r0, n);
      // Student and teacher rows through the head in one product: [H_s; H_t]_c·Wᵀ = [Z_s; Z_t]_c (the two [chunk, V] buffers).
      const hc = rows(hs);
      let zs: Tensor;
      let zt: Tensor | null = null;
      if (ht) {
        const htc = rows(ht);
        const both = T.concat([hc, htc], 0);
        const z2 = T.matmul(both, W, { transB: true });
        zs = T.narrow(z2, 0, 0, n);
        zt = T.narrow(z2, 0, n, n);
        for (const t of [htc, both, z2]) t.dispose();
      } else zs = T.matmul(hc, W, { transB: true });
      hc.dispose();
      const tc = targets ? rows(targets) : null;
      const mc = rows(mask);
      rowPass(
        { ce: req.ce, kl: req.kl, ent: req.ent, tau: req.tau, topK: req.topK, softcap: head.softcap, scale: 1, write: wantGrad },
        { zs, zt, targets: tc, mask: mc, weights: req.weights, vals, row0: r0 },
      );
      for (const t of [zt, tc, mc]) t?.dispose();
      if (dh) {
        // dH = dZ·W for these rows; the frozen head gets no weight gradient.
        const d = T.matmul(zs, W);
        const dst = rows(dh);
        T.copyInto(dst, d);
        for (const t of [d, dst]) t.dispose();
      }
      zs.dispose();
    }
    for (const t of [hs, ht, targets, mask]) t?.dispose();
    return { vals, dh };
  });
  const total = totalOf(vals, req.weights);
  if (!dh) return { total, rows: vals };
  const out = T.record(total, "fusedTokenTerms", [hidden], (g, _needs, [d]) => [scaledGrad(d, g, hidden.shape)], [dh]);
  return { total: out, rows: vals };
}

/**
 * Σ over valid rows of the teacher's entropy at temperature τ, H(softmax(z_T/τ))·mask (a device scalar,
 * no autograd): the adaptive λ1's input. Fused sources run it chunk by chunk through the head.
 */
export function teacherEntropy(teacher: LogitsSource, mask: Tensor, tau: number, chunkRows?: number): Tensor {
  return T.noGrad(() => {
    const m = flatRows(mask, null);
    const N = m.size;
    const vals = emptyTensor(m.backend, [N, ROW_VALUES]);
    const weights = T.zeros([3], { backend: m.backend });
    const pass = { ce: false, kl: false, ent: true, tau: 1, topK: 0, scale: 1 / tau, write: false };
    if (!isFactored(teacher)) {
      const V = teacher.shape[teacher.rank - 1];
      const z = flatRows(teacher, V);
      const zs = z.dtype === "f32" ? z : T.cast(z, "f32");
      rowPass({ ...pass, softcap: null }, { zs, zt: null, targets: null, mask: m, weights, vals, row0: 0 });
    } else {
      const { head } = teacher;
      const h = head.hiddenSize;
      const hs = flatRows(teacher.hidden, h);
      const chunk = chunkRows ?? defaultChunkRows(head.vocab);
      for (let r0 = 0; r0 < N; r0 += chunk) {
        const n = Math.min(chunk, N - r0);
        const hc = T.narrow(hs, 0, r0, n);
        const zs = T.matmul(hc, head.weight, { transB: true });
        const mc = T.narrow(m, 0, r0, n);
        rowPass({ ...pass, softcap: head.softcap }, { zs, zt: null, targets: null, mask: mc, weights, vals, row0: r0 });
        for (const t of [hc, zs, mc]) t.dispose();
      }
    }
    const col = T.narrow(vals, 1, 2, 1);
    return T.sum(col);
  });
}
