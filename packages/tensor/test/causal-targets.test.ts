// causalTargets: the causal-LM shift as one function, so the loss and the regularizers count exactly
// the same positions (logit t is supervised iff labels[t + 1] != -100).
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { testBackend } from "./helpers.js";

describe("causalTargets", () => {
  it("shifts labels left by one, ignores the last position, and masks exactly the counted targets", async () => {
    const b = await testBackend();
    const labels = T.tensor(Int32Array.from([-100, -100, 5, 6, 7, -100, 3, -100, 8, 9]), [2, 5], { backend: b });
    const { targets, mask } = T.causalTargets(labels);
    expect(targets.dtype).toBe("i32");
    expect(await targets.toArray()).toEqual([
      [-100, 5, 6, 7, -100],
      [3, -100, 8, 9, -100],
    ]);
    expect(await mask.toArray()).toEqual([
      [0, 1, 1, 1, 0],
      [1, 0, 1, 1, 0],
    ]);
    // The mean cross-entropy over the targets is the mean over the masked rows, nothing else.
    const logits = T.randn([2, 5, 11], { backend: b, seed: 1 });
    const ce = await T.crossEntropy(logits, targets).item();
    const perRow = await T.crossEntropy(logits, targets, { reduction: "none" }).data();
    const m = await mask.data();
    let s = 0;
    for (let i = 0; i < m.length; i++) s += m[i] * perRow[i];
    expect(ce).toBeCloseTo(s / 6, 5);
    for (const t of [labels, targets, mask, logits]) t.dispose();
  });

  it("a single position supervises nothing; non-[B, T] or non-i32 labels are refused", async () => {
    const b = await testBackend();
    const one = T.tensor(Int32Array.from([4]), [1, 1], { backend: b });
    const { targets, mask } = T.causalTargets(one);
    expect(await targets.toArray()).toEqual([[-100]]);
    expect(await mask.toArray()).toEqual([[0]]);
    expect(() => T.causalTargets(T.zeros([3], { backend: b, dtype: "i32" }))).toThrow(/labels must be i32 \[B, T\], got i32 \[3\]/);
    expect(() => T.causalTargets(T.zeros([1, 3], { backend: b }))).toThrow(/got f32 \[1,3\]/);
    for (const t of [one, targets, mask]) t.dispose();
  });
});
