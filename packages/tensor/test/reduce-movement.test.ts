import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { checkOp, cpu, getGpu } from "./helpers.js";

describe("reductions", () => {
  const cases: [string, number[], number | number[] | undefined, boolean][] = [
    ["all", [5, 7], undefined, false],
    ["last axis keepdim", [3, 4, 67], -1, true],
    ["middle axis", [3, 130, 5], 1, false],
    ["two axes", [6, 5, 4, 3], [0, 2], true],
    ["long row", [2, 1000], 1, false],
    ["many short rows", [300, 3], 1, false],
  ];
  for (const [name, shape, axes, keep] of cases) {
    it(`sum/mean/max ${name}`, async () => {
      await checkOp(`sum ${name}`, (x) => T.sum(x, axes, keep), [{ shape }], { atol: 1e-5, rtol: 1e-5 });
      await checkOp(`mean ${name}`, (x) => T.mean(x, axes, keep), [{ shape }], { atol: 1e-6, rtol: 1e-5 });
      await checkOp(`max ${name}`, (x) => T.max(x, axes, keep), [{ shape }], { atol: 0, rtol: 0, gradAtol: 1e-6 });
    });
  }
  it("reduces strided views without a copy (sum of a transposed view)", async () => {
    await checkOp("sum(transpose)", (x) => T.sum(T.transpose(x), 1), [{ shape: [9, 13] }]);
  });
  it("max shares the gradient among ties like torch.amax", async () => {
    await checkOp("max ties", (x) => T.max(x, 1), [{ shape: [2, 4], values: [1, 3, 3, 0, 2, 2, 2, 2] }], { fd: false });
    const x = T.tensor([[1, 3, 3, 0]], undefined, { backend: cpu, requiresGrad: true });
    T.backward(T.sum(T.max(x, 1)));
    expect(Array.from(await x.grad!.data())).toEqual([0, 0.5, 0.5, 0]);
  });
});

describe("movement ops", () => {
  it("reshape, permute, transpose, expand", async () => {
    await checkOp("reshape", (x) => T.reshape(x, [4, -1]), [{ shape: [2, 3, 10] }]);
    await checkOp("permute", (x) => T.mul(T.permute(x, [2, 0, 1]), 2), [{ shape: [2, 3, 5] }]);
    await checkOp("reshape of a permuted view copies", (x) => T.reshape(T.permute(x, [1, 0]), [15]), [{ shape: [3, 5] }]);
    await checkOp("expand", (x) => T.mul(T.expand(x, [4, 3, 5]), 1), [{ shape: [3, 1] }]);
    await checkOp("unsqueeze/squeeze", (x) => T.squeeze(T.unsqueeze(x, 1), 1), [{ shape: [3, 5] }]);
  });
  it("slice with steps and negative bounds, narrow, split", async () => {
    await checkOp(
      "slice",
      (x) =>
        T.mul(
          T.slice(x, [
            [1, -1],
            [0, 7, 3],
          ]),
          1,
        ),
      [{ shape: [5, 7] }],
    );
    await checkOp("narrow", (x) => T.mul(T.narrow(x, 1, 2, 3), 1), [{ shape: [4, 6] }]);
    await checkOp("split", (x) => T.mul(T.split(x, [2, 5], 0)[1], 1), [{ shape: [7, 3] }]);
    await checkOp("slice of slice", (x) => T.mul(T.slice(T.slice(x, [[1, 5]]), [null, [2, 4]]), 1), [{ shape: [6, 6] }]);
  });
  it("concat", async () => {
    await checkOp("concat axis 1", (a, b) => T.concat([a, b], 1), [{ shape: [3, 2] }, { shape: [3, 5] }]);
    await checkOp("concat axis 0", (a, b, c) => T.concat([a, b, c], 0), [{ shape: [1, 4] }, { shape: [2, 4] }, { shape: [3, 4] }]);
  });
  it("copies i32 bit-exactly (ids above 2^24)", async () => {
    const gpu = await getGpu();
    const ids = T.tensor(new Int32Array([16777217, -5, 2147483647, 3]), [2, 2], { backend: gpu });
    expect(Array.from(await T.transpose(ids).data())).toEqual([16777217, 2147483647, -5, 3]);
  });
  it("rejects bad shapes and bounds with clear messages", async () => {
    const gpu = await getGpu();
    const x = T.zeros([2, 3], { backend: gpu });
    expect(() => T.reshape(x, [4, 2])).toThrow(/reshape: cannot reshape \[2,3\] \(6 elements\) to \[4,2\]/);
    expect(() => T.permute(x, [0, 0])).toThrow(T.ShapeError);
    expect(() =>
      T.slice(x, [
        [0, 5],
        [4, 5],
      ]),
    ).toThrow(T.IndexError);
    expect(() => T.concat([x, T.zeros([3, 3], { backend: gpu })], 1)).toThrow(/concat/);
    expect(() => T.sum(x, 2)).toThrow(/sum: axis 2 is out of range for a tensor of rank 2/);
  });
});
