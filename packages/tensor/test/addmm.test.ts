// addmm: c + alpha·op(a)·op(b) in one kernel (the fused LoRA layer's add), its gradient, and donation
// of c's storage when nothing else holds it.
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { checkOp, testBackend } from "./helpers.js";

describe("addmm", () => {
  it("matches the oracle and finite differences in every layout, with alpha", async () => {
    await checkOp("addmm NT", (c, a, b) => T.addmm(c, a, b, { transB: true, alpha: 0.75 }), [
      { shape: [37, 19] },
      { shape: [37, 13] },
      { shape: [19, 13] },
    ]);
    await checkOp("addmm NN", (c, a, b) => T.addmm(c, a, b, { alpha: -2 }), [{ shape: [9, 20] }, { shape: [9, 5] }, { shape: [5, 20] }]);
    await checkOp("addmm TN", (c, a, b) => T.addmm(c, a, b, { transA: true }), [
      { shape: [8, 12] },
      { shape: [16, 8] },
      { shape: [16, 12] },
    ]);
  });

  it("donates c's storage only when nothing else holds it, and never changes a c someone else reads", async () => {
    const b = await testBackend();
    const a = T.ones([4, 3], { backend: b });
    const w = T.ones([2, 3], { backend: b });
    const c = T.zeros([4, 2], { backend: b });
    const out = T.addmm(c, a, w, { transB: true, donate: true });
    expect(out.storage).toBe(c.storage);
    expect(await out.toArray()).toEqual([
      [3, 3],
      [3, 3],
      [3, 3],
      [3, 3],
    ]);
    const held = T.zeros([4, 2], { backend: b });
    const other = held.viewAs(held.shape);
    const out2 = T.addmm(held, a, w, { transB: true, donate: true });
    expect(out2.storage).not.toBe(held.storage);
    expect(Array.from(await other.data())).toEqual(new Array(8).fill(0));
    for (const t of [a, w, c, out, held, other, out2]) t.dispose();
  });
});
