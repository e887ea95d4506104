// The fused head (hidden states + frozen LM head, chunks of rows; SVD through the Gram matrix) equals
// the materialised path's value and gradient in f32 (1e-5 relative) and in float64 on the oracle.
import * as T from "@balora/tensor";
import { describe, expect, it } from "vitest";
import { TOP_K_FORM } from "../src/fused/rows.js";
import { factoredLogits, LmHead, materialize } from "../src/source.js";
import { type SvdTermOptions, svdTerm } from "../src/svd.js";
import { tokenTerms } from "../src/token.js";
import { cpu, normals, relErr, testBackend, valueAndGrads } from "./helpers.js";

const [B, S, h, V] = [2, 9, 12, 53];
const N = B * S;
const targets = Array.from({ length: N }, (_, i) => (i % S === S - 1 || i === 3 ? -100 : (i * 7) % V));
const mask = Array.from({ length: N }, (_, i) => (i % S < 2 || i % S === S - 1 ? 0 : 1));
// Low-rank-plus-noise hidden states, so the leading singular values are well separated.
const basis = normals(3 * h, 5);
const coef = normals(N * 3, 6, 2);
const noise = normals(N * h, 7, 0.05);
const hiddenVals = Array.from({ length: N * h }, (_, i) => {
  const [r, c] = [Math.floor(i / h), i % h];
  return Math.fround(coef[r * 3] * basis[c] + coef[r * 3 + 1] * basis[h + c] * 0.6 + coef[r * 3 + 2] * basis[2 * h + c] * 0.3 + noise[i]);
});
const teacherVals = hiddenVals.map((v, i) => Math.fround(v + 0.3 * Math.sin(i)));
const weightVals = normals(V * h, 8, 0.4);

type Path = "fused" | "materialised";

function tokenLoss(path: Path, softcap: number | null, topK: number) {
  return (hid: T.Tensor, hidT: T.Tensor, w: T.Tensor) => {
    const backend = hid.backend;
    const head = new LmHead(w, { softcap });
    const s = factoredLogits(T.reshape(hid, [B, S, h]), head);
    const t = factoredLogits(T.reshape(hidT, [B, S, h]), head);
    const r = tokenTerms({
      student: path === "fused" ? s : materialize(s),
      teacher: path === "fused" ? t : T.noGrad(() => materialize(t)),
      targets: T.tensor(targets, [B, S], { backend, dtype: "i32" }),
      mask: T.tensor(mask, [B, S], { backend }),
      weights: T.tensor([0.5, 0.8, -0.3], [3], { backend }),
      ce: true,
      kl: true,
      ent: true,
      tau: 2,
      topK,
      chunkRows: 4,
    });
    r.rows.dispose();
    return r.total;
  };
}

function svdLoss(path: Path, softcap: number | null, o: SvdTermOptions, gaussian = false) {
  return (hid0: T.Tensor, _hidT: T.Tensor, w: T.Tensor) => {
    // Σσ sums every singular value: a full-rank Gaussian block keeps the small ones well conditioned in f32.
    const hid = gaussian ? T.add(hid0, T.tensor(normals(N * h, 9), [N, h], { backend: hid0.backend })) : hid0;
    const head = new LmHead(w, { softcap });
    const s = factoredLogits(T.reshape(hid, [B, S, h]), head);
    return svdTerm(path === "fused" ? s : materialize(s), T.tensor(mask, [B, S], { backend: hid.backend }), o, () => {});
  };
}

const inputs = [
  { values: hiddenVals, shape: [N, h], grad: true },
  { values: teacherVals, shape: [N, h] },
  { values: weightVals, shape: [V, h] },
];

async function compare(make: (p: Path) => (...xs: T.Tensor[]) => T.Tensor, tol: number) {
  const gpu = await testBackend();
  const res: Record<string, { value: number; grads: Float64Array[] }> = {};
  for (const [name, b] of [
    ["gpu", gpu],
    ["cpu", cpu],
  ] as const)
    for (const p of ["fused", "materialised"] as const) res[`${name}-${p}`] = await valueAndGrads(b, inputs, make(p));
  // float64: the two paths are the same math
  expect(Math.abs(res["cpu-fused"].value - res["cpu-materialised"].value)).toBeLessThan(1e-10 * Math.abs(res["cpu-materialised"].value));
  expect(relErr(res["cpu-fused"].grads[0], res["cpu-materialised"].grads[0])).toBeLessThan(1e-9);
  if (process.env.DEBUG_CMP)
    for (const [k, r] of Object.entries(res)) console.log(k, r.value, relErr(r.grads[0], res["cpu-materialised"].grads[0]));
  // f32: fused vs materialised on the device, and vs the float64 oracle
  for (const p of ["gpu-fused", "gpu-materialised"]) {
    expect(Math.abs(res[p].value - res["cpu-materialised"].value) / Math.abs(res["cpu-materialised"].value)).toBeLessThan(tol);
    expect(relErr(res[p].grads[0], res["cpu-materialised"].grads[0])).toBeLessThan(tol * 10);
  }
  expect(Math.abs(res["gpu-fused"].value - res["gpu-materialised"].value) / Math.abs(res["gpu-materialised"].value)).toBeLessThan(tol);
  expect(relErr(res["gpu-fused"].grads[0], res["gpu-materialised"].grads[0])).toBeLessThan(tol * 10);
  return res;
}

describe("fused token terms (CE + KL + entropy) = materialised", () => {
  it("top-20 entropy, chunks of 4 rows", () => compare((p) => tokenLoss(p, null, 20), 1e-5));
  it("full-vocabulary entropy", () => compare((p) => tokenLoss(p, null, 0), 1e-5));
  it("Gemma 2 soft-cap (c = 3) applied in the pass", () => compare((p) => tokenLoss(p, 3, 20), 1e-5));
});

const svdBase: SvdTermOptions = { k: 3, denominator: "frobenius", scope: "batch", method: "exact", niter: 2, oversample: 5 };

describe("the top-k selection form (K arg-max rounds; what fallback adapters such as SwiftShader run)", () => {
  const selection = async (run: () => Promise<unknown>) => {
    TOP_K_FORM.force = "selection";
    try {
      await run();
    } finally {
      TOP_K_FORM.force = null;
    }
  };
  it("top-20 entropy = materialised and the float64 oracle", () => selection(() => compare((p) => tokenLoss(p, null, 20), 1e-5)));
  it("top-7 of soft-capped logits", () => selection(() => compare((p) => tokenLoss(p, 3, 7), 1e-5)));
});

describe("fused SVD term (Gram matrix in hidden space) = materialised", () => {
  it("exact, top-3 over ‖Z‖_F, stacked valid rows", () => compare((p) => svdLoss(p, null, svdBase), 2e-5));
  it("exact, top-3 over Σσ, per sequence", () =>
    compare((p) => svdLoss(p, null, { ...svdBase, denominator: "sum", scope: "sequence" }, true), 2e-5));
  it("soft-capped logits: the Gram matrix over vocabulary chunks", () => compare((p) => svdLoss(p, 2.5, svdBase), 2e-5));
  it("randomized (q = k + 5, 2 power iterations): the same sketch as svdvals", () =>
    compare((p) => svdLoss(p, null, { ...svdBase, method: "randomized" }), 2e-5));
});
