// The row pass under every token term (CE, temperature KL, full and top-k entropy, soft-cap): WebGPU
// vs the float64 oracle, the oracle's gradients vs finite differences, and materialised vs fused.
import * as T from "@balora/tensor";
import { checkOp } from "@balora/tensor/testing";
import { describe, it } from "vitest";
import { tokenTerms } from "../src/token.js";

const N = 7;
const V = 37;
const targets = Array.from({ length: N }, (_, i) => (i === 2 ? -100 : (i * 11) % V));
const mask = [1, 1, 0, 1, 1, 0, 1];

function terms(which: { ce?: boolean; kl?: boolean; ent?: boolean; topK?: number; tau?: number }, w: number[]) {
  return (zs: T.Tensor, zt: T.Tensor) => {
    const backend = zs.backend;
    const r = tokenTerms({
      student: zs,
      teacher: zt,
      targets: T.tensor(targets, [N], { backend, dtype: "i32" }),
      mask: T.tensor(mask, [N], { backend }),
      weights: T.tensor(w, [3], { backend }),
      ce: !!which.ce,
      kl: !!which.kl,
      ent: !!which.ent,
      tau: which.tau ?? 1,
      topK: which.topK ?? 0,
    });
    r.rows.dispose();
    return r.total;
  };
}

const specs = [
  { shape: [N, V], low: -3, high: 3 },
  { shape: [N, V], low: -3, high: 3, grad: false },
];

describe("token terms on materialised logits", () => {
  it("cross-entropy", () => checkOp("ce", terms({ ce: true }, [0.7, 0, 0]), specs));
  it("temperature KL(teacher ‖ student), τ = 2", () => checkOp("kl", terms({ kl: true, tau: 2 }, [0, 1.3, 0]), specs));
  it("full-vocabulary entropy", () => checkOp("entropy", terms({ ent: true }, [0, 0, -0.9]), specs));
  it("top-k entropy (k = 5)", () => checkOp("topk entropy", terms({ ent: true, topK: 5 }, [0, 0, -0.9]), specs));
  it("all together", () => checkOp("all", terms({ ce: true, kl: true, ent: true, topK: 4, tau: 2 }, [0.3, 0.5, -0.2]), specs));
});

describe("token terms at the edges", () => {
  it("logits of ±1e4: finite values and gradients, WebGPU matches the oracle", () => {
    const big = Array.from({ length: N * V }, (_, i) => (i % 5 === 0 ? 1e4 : i % 7 === 0 ? -1e4 : Math.sin(i)));
    const bigT = Array.from({ length: N * V }, (_, i) => (i % 3 === 0 ? -1e4 : i % 11 === 0 ? 1e4 : Math.cos(i)));
    return checkOp(
      "extreme",
      terms({ ce: true, kl: true, ent: true, topK: 4, tau: 2 }, [0.3, 0.5, -0.2]),
      [
        { shape: [N, V], values: big },
        { shape: [N, V], values: bigT, grad: false },
      ],
      { atol: 1e-3, rtol: 1e-5, fd: false },
    );
  });
});
