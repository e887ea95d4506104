// The SVD term −Σ_{i≤k} σ_i / (‖Z‖_F or Σσ) of the masked logit rows: on materialised logits through
// svdvals, or in hidden space through the Gram matrix Z·Zᵀ = H·(WᵀW)·Hᵀ, never forming Z (exact or randomized).
import * as T from "@balora/tensor";
import { ArgumentError, type Tensor } from "@balora/tensor";
import { mapElementwise } from "@balora/tensor/kernel";
import { gramEigh } from "./fused/eigh.js";
import { factoredLogits, isFactored, type LmHead } from "./source.js";
import { flatRows } from "./token.js";
import type { LogitsSource } from "./types.js";

export interface SvdTermOptions {
  /** Top singular values in the numerator. */
  k: number;
  /** ‖Z‖_F (iclr2026) or Σ_i σ_i over all singular values (v5). */
  denominator: "frobenius" | "sum";
  /** One matrix of the batch's stacked valid rows, or one per sequence (the mean over sequences). */
  scope: "batch" | "sequence";
  /** Exact top-k, or randomized (q = k + oversample, niter power iterations, as torch.svd_lowrank). */
  method: "exact" | "randomized";
  niter: number;
  oversample: number;
  seed?: number;
}

/** Lower bound of a usable denominator (the ICLR code's 1e-8): below it the term is 0. */
const TINY = 1e-8;

const machineEps = (t: Tensor) => (t.backend.kind === "cpu" ? 2 ** -52 : 2 ** -23);

/** Vacuous-term report: a host boolean (known from shapes) or a device 0/1 flag. */
export type VacuousReporter = (flag: boolean | Tensor, message: string) => void;

export function validateSvdOptions(o: Record<string, unknown>, field: string): void {
  const int = (name: string, min: number) => {
    const v = o[name];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min)
      throw new ArgumentError(`${field}.${name}: must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  };
  int("k", 1);
  int("niter", 0);
  int("oversample", 0);
  const oneOf = (name: string, values: string[]) => {
    if (!values.includes(o[name] as string))
      throw new ArgumentError(`${field}.${name}: must be ${values.map((v) => `"${v}"`).join(" or ")}, got ${JSON.stringify(o[name])}`);
  };
  oneOf("denominator", ["frobenius", "sum"]);
  oneOf("scope", ["batch", "sequence"]);
  oneOf("method", ["exact", "randomized"]);
}

/**
 * The SVD term over the rows of `source` (logits [..., V] or factored hidden [..., h]) weighted by
 * `mask` (same leading shape, 1/0). Scope `sequence` takes the first axis as the sequences.
 * Vacuous (value 0, zero gradient, reported once) when fewer valid rows than k or k ≥ V.
 */
export function svdTerm(source: LogitsSource, mask: Tensor, o: SvdTermOptions, report: VacuousReporter): Tensor {
  const vocab = isFactored(source) ? source.head.vocab : source.shape[source.rank - 1];
  const rowsShape = isFactored(source) ? source.hidden.shape.slice(0, -1) : source.shape.slice(0, -1);
  const message = `svd: the term is vacuous (0) for a matrix with fewer valid rows than k = ${o.k} or with k ≥ its ${vocab} columns`;
  if (o.scope === "batch" || rowsShape.length < 2) return matrixTerm(source, mask, o, report, message);
  // One matrix per sequence: the mean over sequences whose term is not vacuous.
  const B = rowsShape[0];
  const values: Tensor[] = [];
  const oks: Tensor[] = [];
  for (let b = 0; b < B; b++) {
    const part = (t: Tensor) => T.squeeze(T.narrow(t, 0, b, 1), 0);
    const src = isFactored(source) ? factoredLogits(part(source.hidden), source.head) : part(source);
    const m = part(mask);
    let ok: Tensor | null = null;
    values.push(
      matrixTerm(
        src,
        m,
        o,
        () => {},
        message,
        (f) => (ok = f),
      ),
    );
    oks.push(ok ?? T.zeros([], { backend: mask.backend }));
  }
  const okAll = T.noGrad(() => T.concat(oks.map((x) => T.reshape(x, [1]))));
  const count = T.noGrad(() => T.maximum(T.sum(okAll), 1));
  report(
    T.noGrad(() => T.eq(T.sum(okAll), 0)),
    message,
  );
  const total = values.reduce((acc, v) => (acc ? T.add(acc, v) : v), null as Tensor | null)!;
  return T.div(total, count);
}

function staticallyVacuous(rows: number, vocab: number, k: number): boolean {
  return rows < k || k >= vocab;
}

/** One matrix: −S_k/den · ok, ok = (den > 1e-8)·(valid rows ≥ k) on the device. `okOut` receives ok (no autograd). */
function matrixTerm(
  source: LogitsSource,
  mask: Tensor,
  o: SvdTermOptions,
  report: VacuousReporter,
  message: string,
  okOut?: (ok: Tensor) => void,
): Tensor {
  const vocab = isFactored(source) ? source.head.vocab : source.shape[source.rank - 1];
  const rows = mask.size;
  if (staticallyVacuous(rows, vocab, o.k)) {
    report(true, message);
    okOut?.(T.zeros([], { backend: mask.backend }));
    return T.zeros([], { backend: mask.backend });
  }
  const m = flatRows(mask, null);
  const enough = T.noGrad(() => T.ge(T.sum(m), o.k));
  report(
    T.noGrad(() => T.sub(1, enough)),
    message,
  );
  const out = isFactored(source) ? gramTerm(source.hidden, source.head, m, enough, o, okOut) : logitsTerm(source, m, enough, o, okOut);
  m.dispose();
  return out;
}

const safeSqrt = (x: Tensor) => T.sqrt(T.maximum(x, TINY * TINY));

/** The reference path: the masked logits [n, V] through svdvals (autograd). */
function logitsTerm(z: Tensor, m: Tensor, enough: Tensor, o: SvdTermOptions, okOut?: (ok: Tensor) => void): Tensor {
  const { value, ok } = T.tidy(() => logitsTermRaw(z, m, enough, o));
  okOut?.(ok);
  return value;
}

function logitsTermRaw(z: Tensor, m: Tensor, enough: Tensor, o: SvdTermOptions): { value: Tensor; ok: Tensor } {
  const V = z.shape[z.rank - 1];
  const n = z.size / V;
  const z2 = T.reshape(z, [n, V]);
  const zm = T.mul(z2, T.reshape(m, [n, 1]));
  const s = T.sum(T.svdvals(zm, o.k, { method: o.method, niter: o.niter, oversample: o.oversample, seed: o.seed ?? 0 }));
  const den = o.denominator === "frobenius" ? safeSqrt(T.sum(T.square(zm))) : T.sum(T.svdvals(zm, Math.min(n, V), { method: "exact" }));
  const ok = T.noGrad(() => T.mul(enough, T.gt(den, TINY)));
  return { value: T.sub(0, T.mul(T.div(s, T.maximum(den, TINY)), ok)), ok };
}

interface Spectrum {
  /** All singular values (descending) of the masked Z: n of them, or h from the hidden-space form. */
  sigma: Tensor;
  /** Their left singular vectors [n, n] or [n, h] (eigenvectors of Z·Zᵀ). */
  u: Tensor;
}

/** The fused path: value and d/dH in hidden space; Z is formed only in vocabulary chunks when the head has a soft-cap. */
function gramTerm(hidden: Tensor, head: LmHead, m: Tensor, enough: Tensor, o: SvdTermOptions, okOut?: (ok: Tensor) => void): Tensor {
  const h = head.hiddenSize;
  const n = hidden.size / h;
  const wantGrad = T.isGradEnabled() && hidden.requiresGrad;
  const capped = head.softcap !== null;
  const randomized = o.method === "randomized" && !capped && o.k < n;
  const { value, dh, ok } = T.tidy(() =>
    T.noGrad(() => {
      const hm = T.mul(flatRows(hidden, h), T.reshape(m, [n, 1]));
      // P = Hm·WᵀW (so Z·W = P when uncapped); G = Z·Zᵀ.
      const P = capped ? null : T.matmul(hm, head.gram());
      const cappedG = capped ? cappedGram(hm, head) : null;
      const f2 = P ? T.sum(T.mul(hm, P)) : trace(cappedG!);
      const needAll = o.denominator === "sum" || !randomized;
      // Fewer hidden dimensions than rows: the h×h eigenproblem of (Hm·L)ᵀ(Hm·L) with L·Lᵀ = WᵀW has
      // the same nonzero spectrum, and u_i = Hm·L·v_i/σ_i; otherwise the n×n Gram matrix Z·Zᵀ.
      const hiddenForm = needAll && !capped && h < n && o.k <= h;
      let spec: Spectrum | null = null;
      if (hiddenForm) spec = hiddenSpectrum(hm, head, machineEps(hidden));
      else if (needAll) spec = spectrum(cappedG ?? T.matmul(P!, hm, { transB: true }));
      let S: Tensor;
      let topGrad: (() => Tensor) | null = null;
      if (randomized) {
        const r = randomizedTop(hm, head, o, n);
        S = T.sum(r.s);
        // ∂σ_i/∂Hm = u_i·(Wᵀv_i)ᵀ with the sketch's singular vectors (as svdvals differentiates its randomized path).
        topGrad = () => T.matmul(r.u, r.wtv, { transB: true });
      } else {
        const top = T.narrow(spec!.sigma, 0, 0, o.k);
        S = T.sum(top);
      }
      const den = o.denominator === "frobenius" ? safeSqrt(f2) : T.sum(spec!.sigma);
      const ok = T.mul(enough, T.gt(den, TINY));
      const safeDen = T.maximum(den, TINY);
      const value = T.sub(0, T.mul(T.div(S, safeDen), ok));
      if (!wantGrad) return { value, dh: null, ok };
      const inv = spec ? inverseSigma(spec.sigma, machineEps(hidden)) : null;
      // Projector-weighted sums: Σ_{i∈set} u_i·u_iᵀ·X/σ_i = U_set·diag(1/σ)·U_setᵀ·X.
      const weighted = (count: number, X: Tensor) => {
        const U = T.narrow(spec!.u, 1, 0, count);
        const c = T.narrow(inv!, 0, 0, count);
        const UtX = T.matmul(U, X, { transA: true });
        return T.matmul(U, T.mul(UtX, T.reshape(c, [count, 1])));
      };
      // dLoss/dHm = a·∂S + b·∂den with a = −ok/den, b = ok·S/den², ∂‖Z‖_F = Z·W/‖Z‖_F, ∂Σσ = Σ_i u_i·u_iᵀ·Z·W/σ_i.
      const a = T.neg(T.div(ok, safeDen));
      const bcoef = T.div(T.mul(ok, S), T.square(safeDen));
      let dhm: Tensor;
      if (P) {
        const dS = topGrad ? topGrad() : weighted(o.k, P);
        const dDen = o.denominator === "frobenius" ? T.div(P, safeDen) : weighted(spec!.sigma.shape[0], P);
        dhm = T.add(T.mul(dS, a), T.mul(dDen, bcoef));
      } else {
        // Soft-capped: dLoss/dZ = C·Z with C = a·U_k·diag(1/σ)·U_kᵀ + b·(I/‖Z‖_F or U·diag(1/σ)·Uᵀ); then through the cap and W.
        const ident = eye(n, hm);
        const topC = weighted(o.k, ident);
        const denC = o.denominator === "frobenius" ? T.div(ident, safeDen) : weighted(n, ident);
        const C = T.add(T.mul(topC, a), T.mul(denC, bcoef));
        dhm = cappedBackward(hm, head, C);
      }
      const dh = T.reshape(T.mul(dhm, T.reshape(m, [n, 1])), hidden.shape);
      return { value, dh, ok };
    }),
  );
  okOut?.(ok);
  if (!dh) return value;
  return T.record(value, "svdGram", [hidden], (g, _needs, [d]) => [T.mul(d, g)], [dh]);
}

/**
 * Eigenpairs of the PSD Gram matrix: σ = √λ descending and the eigenvectors, by one-sided Jacobi
 * without a shift (small eigenvalues keep their accuracy, as in svdvals' exact path), all sweeps in
 * one dispatch (gramEigh).
 */
function spectrum(G: Tensor): Spectrum {
  const { values, vectors } = gramEigh(G);
  return { sigma: T.sqrt(T.maximum(values, 0)), u: vectors };
}

/** The spectrum from h-space: M = Kᵀ·K with K = Hm·L [n, h]; σ = √eig(M), u_i = K·v_i/σ_i (0 at noise level). */
function hiddenSpectrum(hm: Tensor, head: LmHead, eps: number): Spectrum {
  const K = T.matmul(hm, head.gramRoot());
  const { values, vectors } = gramEigh(T.matmul(K, K, { transA: true }));
  const sigma = T.sqrt(T.maximum(values, 0));
  const u = T.mul(T.matmul(K, vectors), T.reshape(inverseSigma(sigma, eps), [1, head.hiddenSize]));
  return { sigma, u };
}

/** 1/σ_i where σ_i > √eps·σ_1, else 0 (directions at noise level get no gradient, as svdvals). */
function inverseSigma(sigma: Tensor, eps: number): Tensor {
  const first = T.narrow(sigma, 0, 0, 1);
  return mapElementwise(
    "svd_inverse_sigma",
    [sigma, first, Math.sqrt(eps)],
    ([x, x0, t]) => `select(0.0, 1.0 / ${x}, ${x} > ${x0} * ${t})`,
    (x, x0, t) => (x > x0 * t ? 1 / x : 0),
  );
}

/** The n×n identity. */
function eye(n: number, like: Tensor): Tensor {
  const z = T.zeros([n, n], { backend: like.backend });
  const e = mapElementwise(
    "svd_eye",
    [z, n],
    ([_, d]) => `select(0.0, 1.0, i % (u32(${d}) + 1u) == 0u)`,
    (_, d, i) => +(i % (d + 1) === 0),
  );
  z.dispose();
  return e;
}

const trace = (G: Tensor): Tensor => T.sum(T.mul(G, eye(G.shape[0], G)));

const vocabChunk = (n: number, V: number) => Math.max(256, Math.min(V, Math.floor((16 * 2 ** 20) / (4 * Math.max(n, 1)))));

/** Soft-capped logits of one vocabulary chunk [n, vc] of the head. */
function cappedChunk(hm: Tensor, head: LmHead, v0: number, vc: number): Tensor {
  const w = T.narrow(head.weight, 0, v0, vc);
  const z = T.matmul(hm, w, { transB: true });
  const c = head.softcap!;
  return mapElementwise(
    "svd_softcap",
    [z, c],
    ([x, cc]) => `${cc} * tanh(clamp(${x} / ${cc}, -15.0, 15.0))`,
    (x, cc) => cc * Math.tanh(x / cc),
  );
}

/** G = Σ over vocabulary chunks of Zc·Zcᵀ (Gemma 2's capped logits are not linear in H). */
function cappedGram(hm: Tensor, head: LmHead): Tensor {
  const n = hm.shape[0];
  const V = head.vocab;
  const step = vocabChunk(n, V);
  let G: Tensor | null = null;
  for (let v0 = 0; v0 < V; v0 += step) {
    const zc = cappedChunk(hm, head, v0, Math.min(step, V - v0));
    const part = T.matmul(zc, zc, { transB: true });
    G = G ? T.add(G, part) : part;
  }
  return G!;
}

/** dHm = Σ over vocabulary chunks of ((C·Zc) ⊙ (1 − (Zc/c)²))·W_c. */
function cappedBackward(hm: Tensor, head: LmHead, C: Tensor): Tensor {
  const n = hm.shape[0];
  const V = head.vocab;
  const step = vocabChunk(n, V);
  const c = head.softcap!;
  let d: Tensor | null = null;
  for (let v0 = 0; v0 < V; v0 += step) {
    const vc = Math.min(step, V - v0);
    const zc = cappedChunk(hm, head, v0, vc);
    const y = T.matmul(C, zc);
    const dz = mapElementwise(
      "svd_softcap_grad",
      [y, zc, c],
      ([g, x, cc]) => `${g} * (1.0 - (${x} / ${cc}) * (${x} / ${cc}))`,
      (g, x, cc) => g * (1 - (x / cc) ** 2),
    );
    const part = T.matmul(dz, T.narrow(head.weight, 0, v0, vc));
    d = d ? T.add(d, part) : part;
  }
  return d!;
}

/**
 * torch.svd_lowrank's sketch (Ω of n×q, q = min(k + oversample, n, V)) with every product by Z = Hm·Wᵀ
 * factored: Z·X = Hm·(Wᵀ·X), Zᵀ·Y = W·(Hmᵀ·Y). Same algorithm and seed as svdvals' randomized path.
 * Returns the top-k σ, their left vectors u [n, k] and Wᵀ·v [h, k].
 */
function randomizedTop(hm: Tensor, head: LmHead, o: SvdTermOptions, n: number): { s: Tensor; u: Tensor; wtv: Tensor } {
  const W = head.weight;
  const q = Math.min(o.k + o.oversample, n, head.vocab);
  const zTimes = (X: Tensor) => T.matmul(hm, T.matmul(W, X, { transA: true }));
  const ztTimes = (Y: Tensor) => T.matmul(W, T.matmul(hm, Y, { transA: true }));
  const omega = T.randn([n, q], { seed: o.seed ?? 0, backend: hm.backend });
  let basis = T.qr(ztTimes(omega)).q;
  for (let i = 0; i < o.niter; i++) {
    const rowBasis = T.qr(zTimes(basis)).q;
    basis = T.qr(ztTimes(rowBasis)).q;
  }
  const wtb = T.matmul(W, basis, { transA: true }); // Wᵀ·basis [h, q]
  const projected = T.transpose(T.matmul(hm, wtb)); // basisᵀ·Zᵀ [q, n]
  const small = T.svd(projected);
  return {
    s: T.narrow(small.s, 0, 0, o.k),
    u: T.narrow(small.v, 1, 0, o.k),
    wtv: T.matmul(wtb, T.narrow(small.u, 1, 0, o.k)),
  };
}
