// The fused LoRA linear against the float64 oracle and finite differences: with and without a
// separate dropout input, frozen and trainable base weights, and equal to the unfused layer.
import * as T from "@balora/tensor";
import { checkOp } from "@balora/tensor/testing";
import { describe, it } from "vitest";
import { loraLinear } from "../src/fused.js";

describe("loraLinear", () => {
  it("y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ with every gradient (x, A, B, and W when it trains)", async () => {
    await checkOp("lora linear", (x, W, A, B) => loraLinear(x, x, W, A, B, 0.75), [
      { shape: [13, 12] },
      { shape: [20, 12] },
      { shape: [4, 12] },
      { shape: [20, 4] },
    ]);
    await checkOp("lora linear, frozen W", (x, W, A, B) => loraLinear(x, x, W, A, B, 2), [
      { shape: [9, 16] },
      { shape: [8, 16], grad: false },
      { shape: [2, 16] },
      { shape: [8, 2] },
    ]);
  });

  it("with the adapter's input after dropout as its own input: gradients go to x and to xd", async () => {
    await checkOp("lora linear, dropout", (x, W, A, B) => loraLinear(x, T.dropout(x, 0.3, { seed: 1, stream: "t" }), W, A, B, 0.5), [
      { shape: [11, 8] },
      { shape: [6, 8], grad: false },
      { shape: [3, 8] },
      { shape: [6, 3] },
    ]);
  });

  it("equals the unfused layer: x·Wᵀ + s·B(A(x))", async () => {
    await checkOp(
      "unfused",
      (x, W, A, B) => T.add(T.matmul(x, W, { transB: true }), T.mul(T.matmul(T.matmul(x, A, { transB: true }), B, { transB: true }), 0.75)),
      [{ shape: [13, 12] }, { shape: [20, 12] }, { shape: [4, 12] }, { shape: [20, 4] }],
    );
  });
});
