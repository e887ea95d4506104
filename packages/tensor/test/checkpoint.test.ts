// Gradient checkpointing: a block recomputed in backward gives the same gradients (inputs and the
// parameters it reads, dropout included) as the stored graph, and keeps fewer tensors alive.
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { testBackend } from "./helpers.js";

describe("checkpoint", () => {
  it("gives the same input and parameter gradients as the stored graph, with keyed dropout inside", async () => {
    const b = await testBackend();
    const w1 = T.randn([16, 8], { backend: b, seed: 1, requiresGrad: true });
    const w2 = T.randn([8, 16], { backend: b, seed: 2, requiresGrad: true });
    const block = (h: T.Tensor) =>
      T.tidy(() =>
        T.add(h, T.matmul(T.dropout(T.silu(T.matmul(h, w1, { transB: true })), 0.2, { seed: 3, step: 7 }), w2, { transB: true })),
      );
    const run = async (ckpt: boolean) => {
      const x = T.randn([5, 8], { backend: b, seed: 4, requiresGrad: true });
      const h1 = ckpt ? T.checkpoint(block, [x], [w1, w2]) : block(x);
      const h2 = ckpt ? T.checkpoint(block, [h1], [w1, w2]) : block(h1);
      const loss = T.sum(T.square(h2));
      T.backward(loss);
      const out = [await loss.item(), ...(await Promise.all([x, w1, w2].map(async (t) => Array.from(await t.grad!.data()))))];
      for (const t of [x, h1, h2, loss]) t.dispose();
      w1.grad?.dispose();
      w2.grad?.dispose();
      w1.grad = null;
      w2.grad = null;
      return out;
    };
    const plain = await run(false);
    const recomputed = await run(true);
    expect(recomputed[0]).toBeCloseTo(plain[0] as number, 5);
    for (let i = 1; i < 4; i++) (recomputed[i] as number[]).forEach((v, j) => expect(v).toBeCloseTo((plain[i] as number[])[j], 5));
    for (const t of [w1, w2]) t.dispose();
  });

  it("constants (a mask) are held by the graph: the caller may dispose its handle before backward", async () => {
    const b = await testBackend();
    const w = T.randn([6, 6], { backend: b, seed: 8, requiresGrad: true });
    const block = (h: T.Tensor, m: T.Tensor) => T.tidy(() => T.mul(T.tanh(T.matmul(h, w)), m));
    const grads = async (ckpt: boolean) => {
      const x = T.randn([3, 6], { backend: b, seed: 9 });
      const mask = T.tensor([1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1], [3, 6], { backend: b });
      const y = ckpt ? T.checkpoint(block, [x], [w], [mask]) : block(x, mask);
      mask.dispose(); // as DecoderModel.forward disposes its key mask before the trainer's backward
      T.backward(T.sum(T.square(y)));
      const g = Array.from(await w.grad!.data());
      w.grad!.dispose();
      w.grad = null;
      for (const t of [x, y]) t.dispose();
      return g;
    };
    const plain = await grads(false);
    (await grads(true)).forEach((v, i) => expect(v).toBeCloseTo(plain[i], 6));
    w.dispose();
  });

  it("holds only the block inputs between forward and backward", async () => {
    const b = await testBackend();
    const w = T.randn([64, 64], { backend: b, seed: 5, requiresGrad: true });
    const block = (h: T.Tensor) => T.tidy(() => T.tanh(T.matmul(T.tanh(T.matmul(T.tanh(T.matmul(h, w)), w)), w)));
    const live = async (ckpt: boolean) => {
      const x = T.randn([32, 64], { backend: b, seed: 6, requiresGrad: true });
      await b.sync();
      const before = b.memory().storages;
      let h = x;
      for (let i = 0; i < 4; i++) {
        const next = ckpt ? T.checkpoint(block, [h], [w]) : block(h);
        if (h !== x) h.dispose();
        h = next;
      }
      const during = b.memory().storages - before;
      const loss = T.sum(h);
      T.backward(loss);
      for (const t of [x, h, loss]) t.dispose();
      w.grad?.dispose();
      w.grad = null;
      return during;
    };
    const [plain, ckpt] = [await live(false), await live(true)];
    // Stored: three activations per block; checkpointed: only each block's input.
    expect(plain).toBe(12);
    expect(ckpt).toBe(4);
    w.dispose();
  });
});
