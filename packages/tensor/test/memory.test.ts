// Memory a user cannot get wrong: the graph owns what ops saved and frees it after backward (or when
// nothing can reach it), `using` disposes, and training loops without tidy stay flat for every optimizer.
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { testBackend } from "./helpers.js";

/** The storages and bytes a fresh scope adds, after the GPU finished (pooled buffers come back only then). */
async function liveAfter(b: T.Backend, fn: () => void | Promise<void>): Promise<{ storages: number; bytes: number }> {
  await b.sync();
  const before = b.memory();
  await fn();
  await b.sync();
  const after = b.memory();
  return { storages: after.storages - before.storages, bytes: after.bytesInUse - before.bytesInUse };
}

describe("the graph owns saved tensors", () => {
  it("a matmul → rmsNorm → crossEntropy step outside tidy leaves nothing once the user disposes what they made", async () => {
    const b = await testBackend();
    const leaked = await liveAfter(b, async () => {
      const w = T.randn([8, 6], { backend: b, seed: 1, requiresGrad: true });
      const g = T.ones([8], { backend: b, requiresGrad: true });
      const x = T.randn([5, 6], { backend: b, seed: 2 });
      const labels = T.tensor(Int32Array.from([1, -100, 3, 7, 0]), [5], { backend: b });
      const h = T.matmul(x, w, { transB: true });
      const n = T.rmsNorm(h, g);
      const loss = T.crossEntropy(n, labels);
      T.backward(loss);
      expect(w.grad).not.toBeNull();
      expect(Number.isFinite(await loss.item())).toBe(true);
      for (const t of [w, g, x, labels, h, n, loss]) t.dispose();
    });
    expect(leaked).toEqual({ storages: 0, bytes: 0 });
  });

  it("disposing the loss without backward frees the whole graph behind it", async () => {
    const b = await testBackend();
    const leaked = await liveAfter(b, () => {
      const w = T.randn([4, 4], { backend: b, seed: 3, requiresGrad: true });
      const x = T.randn([3, 4], { backend: b, seed: 4 });
      const h = T.matmul(x, w);
      const y = T.softmax(h);
      const sq = T.square(y);
      const loss = T.mean(sq);
      // Intermediates first: each stays in the graph until nothing downstream can reach it.
      for (const t of [h, y, sq, w, x, loss]) t.dispose();
    });
    expect(leaked.storages).toBe(0);
  });

  it("backward frees each node; a second backward says why; retainGraph keeps the graph for it", async () => {
    const b = await testBackend();
    const w = T.tensor([0.5, -1, 2], [3], { backend: b, requiresGrad: true });
    const loss = T.sum(T.mul(T.exp(w), w));
    T.backward(loss, { retainGraph: true });
    const first = Array.from(await w.grad!.data());
    T.backward(loss);
    const twice = Array.from(await w.grad!.data());
    twice.forEach((v, i) => expect(v).toBeCloseTo(2 * first[i], 5));
    expect(() => T.backward(loss)).toThrow(/already freed.*retainGraph/);
    // d/dw (w·eʷ) = eʷ(1 + w)
    first.forEach((v, i) => expect(v).toBeCloseTo(Math.exp([0.5, -1, 2][i]) * (1 + [0.5, -1, 2][i]), 5));
    loss.dispose();
    w.dispose();
  });

  it("`using` disposes tensors, modules and optimizers at the end of the block", async () => {
    const b = await testBackend();
    const leaked = await liveAfter(b, () => {
      using layer = new T.Linear(4, 3, { backend: b, seed: 1 });
      using opt = new T.AdamW(layer.namedTrainableParameters(), { lr: 0.1 });
      using x = T.randn([2, 4], { backend: b, seed: 5 });
      using y = layer.forward(x);
      using loss = T.sum(y);
      T.backward(loss);
      opt.step();
      opt.zeroGrad();
    });
    expect(leaked.storages).toBe(0);
  });

  it("a saved input survives the user disposing it before backward", async () => {
    const b = await testBackend();
    const x = T.tensor([1, 2, 3], [3], { backend: b, requiresGrad: true });
    const c = T.tensor([4, 5, 6], [3], { backend: b });
    const y = T.sum(T.mul(x, c));
    c.dispose(); // mul saved its own view of c
    T.backward(y);
    expect(Array.from(await x.grad!.data())).toEqual([4, 5, 6]);
    y.dispose();
    x.dispose();
  });
});

describe("training loops without tidy keep memory flat", () => {
  const optimizers: [string, (p: [string, T.Tensor][]) => T.Optimizer][] = [
    ["AdamW", (p) => new T.AdamW(p, { lr: 1e-2, weightDecay: 0.01 })],
    ["SGD", (p) => new T.SGD(p, { lr: 1e-2 })],
    ["SGD with momentum and weight decay", (p) => new T.SGD(p, { lr: 1e-2, momentum: 0.9, weightDecay: 1e-3 })],
  ];
  for (const [name, make] of optimizers) {
    it(`200 steps of an MLP with ${name}, disposing by hand: bytes and storages stay flat`, async () => {
      const b = await testBackend();
      const l1 = new T.Linear(8, 16, { backend: b, seed: 1, bias: true });
      const l2 = new T.Linear(16, 4, { backend: b, seed: 2 });
      const norm = new T.RMSNorm(16, 1e-6, 0, { backend: b });
      const named = (prefix: string, m: T.Module) =>
        m.namedTrainableParameters().map(([n, t]): [string, T.Tensor] => [`${prefix}.${n}`, t]);
      const params = [...named("l1", l1), ...named("l2", l2), ...named("norm", norm)];
      const opt = make(params);
      const x = T.randn([6, 8], { backend: b, seed: 3 });
      const labels = T.tensor(Int32Array.from([0, 1, 2, 3, -100, 1]), [6], { backend: b });
      const step = () => {
        const h = l1.forward(x);
        const a = T.silu(h);
        const n = norm.forward(a);
        const logits = l2.forward(n);
        const loss = T.crossEntropy(logits, labels);
        T.backward(loss);
        const gn = T.clipGradNorm(opt.params, 1.0);
        opt.step();
        opt.zeroGrad();
        for (const t of [h, a, n, logits, loss, gn]) t?.dispose();
      };
      for (let i = 0; i < 5; i++) step(); // optimizer state exists from the first step on
      await b.sync();
      const start = b.memory();
      for (let i = 0; i < 200; i++) step();
      await b.sync();
      const end = b.memory();
      expect(end.storages).toBe(start.storages);
      expect(end.bytesInUse).toBe(start.bytesInUse);
      opt.dispose();
      for (const m of [l1, l2, norm]) m.dispose();
      x.dispose();
      labels.dispose();
      await b.sync();
    });
  }
});
