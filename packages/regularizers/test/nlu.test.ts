// NLU terms on class logits [B, C]: temperature KL, MSE of L2-normalised logits, the off-diagonal
// covariance penalty and the SVD term — WebGPU vs the float64 oracle, the oracle vs finite differences.
import * as T from "@balora/tensor";
import { checkOp } from "@balora/tensor/testing";
import { describe, expect, it } from "vitest";
import { consistencyRegularizer, diversityRegularizer, type RegularizerContext, svdRegularizer } from "../src/index.js";
import { cpu } from "./helpers.js";

const [B, C] = [7, 5];
function ctx(student: T.Tensor, teacher: T.Tensor | null, rows = B): RegularizerContext {
  return {
    student,
    teacher,
    mask: T.ones([rows], { backend: student.backend }),
    taskType: "nlu",
    step: 0,
    totalSteps: 10,
    warn: () => {},
    reportVacuous: () => {},
  };
}
const specs = [
  { shape: [B, C], low: -2, high: 2 },
  { shape: [B, C], low: -2, high: 2, grad: false },
];
const cons = (nlu: "kl" | "mse") => (zs: T.Tensor, zt: T.Tensor) =>
  consistencyRegularizer.loss(ctx(zs, zt), { ...consistencyRegularizer.defaults, nlu });

describe("NLU terms", () => {
  it("temperature KL on class logits (τ = 2)", () => checkOp("nlu kl", cons("kl"), specs));
  it("MSE of L2-normalised logits", () => checkOp("nlu mse", cons("mse"), specs));
  it("Σ_{i≠j} Cov_ij² / C", () =>
    checkOp("nlu covariance", (zs) => diversityRegularizer.loss(ctx(zs, null), { topK: 0 }), specs.slice(0, 1)));
  it("SVD on the (B×C) logits, k = 2 over ‖Z‖_F", () =>
    checkOp("nlu svd", (zs) => svdRegularizer.loss(ctx(zs, null), { ...svdRegularizer.defaults, k: 2 }), specs.slice(0, 1), {
      gradAtol: 2e-5,
      gradRtol: 1e-4,
    }));
  it("one example: the covariance penalty is vacuous (0), reported", async () => {
    const seen: unknown[] = [];
    const z = T.tensor([0.3, -1, 2, 0.5, 0.1], [1, C], { backend: cpu });
    const c = { ...ctx(z, null, 1), reportVacuous: (f: boolean | T.Tensor) => seen.push(f) };
    expect(await diversityRegularizer.loss(c, { topK: 0 }).item()).toBe(0);
    expect(seen).toEqual([true]);
  });
});
