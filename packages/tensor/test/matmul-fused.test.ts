// The fused matmul epilogues the LoRA layer stands on: addmm (c + alpha·op(a)·op(b) in one kernel,
// with its gradient and donation of c's storage) and matmulDual (two products summed in one kernel).
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { matmulDual } from "../src/kernel.js";
import { checkOp, cpu, expectClose, testBackend } from "./helpers.js";

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

describe("matmulDual", () => {
  const cases: [string, number, number, number, number, boolean, boolean][] = [
    ["x·Wᵀ + u·Bᵀ (vec4)", 64, 48, 32, 16, false, true],
    ["g·W + du·A (vec4)", 40, 36, 24, 8, false, false],
    ["odd sizes", 37, 29, 19, 5, false, true],
    ["transposed A", 20, 12, 16, 4, true, false],
  ];
  for (const [name, M, N, K1, K2, tA, tB] of cases)
    it(`${name}: equals the two products summed, with alpha and accumulation, on the oracle`, async () => {
      const b = await testBackend();
      const mk = (be: T.Backend, seed: number, shape: number[]) => T.randn(shape, { backend: be, seed });
      const run = async (be: T.Backend) => {
        const a1 = mk(be, 1, tA ? [K1, M] : [M, K1]);
        const b1 = mk(be, 2, tB ? [N, K1] : [K1, N]);
        const a2 = mk(be, 3, tA ? [K2, M] : [M, K2]);
        const b2 = mk(be, 4, tB ? [N, K2] : [K2, N]);
        const out = mk(be, 5, [M, N]);
        matmulDual(out, [a1, b1], [a2, b2], { transA: tA, transB: tB, alpha: 0.5, accumulate: true });
        const v = Array.from(await out.data());
        for (const t of [a1, b1, a2, b2, out]) t.dispose();
        return v;
      };
      expectClose(await run(b), await run(cpu), 1e-5, 1e-5, name);
    });
});
