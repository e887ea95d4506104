import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { cpu, expectClose, getGpu } from "./helpers.js";

describe("nn layers", () => {
  it("Linear uses HF's [out, in] weight, y = x·Wᵀ + b, on both backends", async () => {
    const gpu = await getGpu();
    for (const backend of [cpu, gpu]) {
      const lin = new T.Linear(3, 2, { backend, bias: true, seed: 3 });
      expect(lin.weight.shape).toEqual([2, 3]);
      const w = Array.from(await lin.weight.data());
      const b = Array.from(await lin.bias!.data());
      const x = T.tensor([[[1, 2, 3]], [[-1, 0, 0.5]]], undefined, { backend });
      const y = await lin.forward(x).data();
      const want = [
        [1, 2, 3],
        [-1, 0, 0.5],
      ].flatMap((xr) => [0, 1].map((o) => b[o] + xr.reduce((s, xv, i) => s + xv * w[o * 3 + i], 0)));
      expectClose(y, want, 1e-6, 1e-6, `linear ${backend.kind}`);
      expect([...lin.namedParameters()].map(([n]) => n)).toEqual(["weight", "bias"]);
    }
  });
  it("Module walks, replaces and freezes submodules by dotted path", async () => {
    const gpu = await getGpu();
    class Block extends T.Module {
      q_proj = new T.Linear(4, 4, { backend: gpu });
      norm = new T.RMSNorm(4, 1e-6, 0, { backend: gpu });
    }
    class Net extends T.Module {
      layers = [new Block(), new Block()];
      embed = new T.Embedding(10, 4, { backend: gpu });
    }
    const net = new Net();
    expect([...net.namedModules()].map(([n]) => n)).toEqual([
      "",
      "layers.0",
      "layers.0.q_proj",
      "layers.0.norm",
      "layers.1",
      "layers.1.q_proj",
      "layers.1.norm",
      "embed",
    ]);
    expect([...net.namedParameters()].map(([n]) => n)).toContain("layers.1.q_proj.weight");
    const repl = new T.Linear(4, 4, { backend: gpu, seed: 9 });
    net.setSubmodule("layers.1.q_proj", repl);
    expect(net.getSubmodule("layers.1.q_proj")).toBe(repl);
    expect(() => net.getSubmodule("layers.7.q_proj")).toThrow(/no module/);
    // a tensor shared by two modules (tied embeddings) is listed once, like torch
    const tied = new T.Linear(net.embed.weight);
    (net as unknown as { head: T.Linear }).head = tied;
    expect([...net.namedParameters()].filter(([, t]) => t === net.embed.weight).map(([n]) => n)).toEqual(["embed.weight"]);
    net.requiresGrad_(false);
    expect(net.trainableParameters()).toHaveLength(0);
  });
});

/** torch.optim.AdamW, written out from its documented update in float64. */
function adamwReference(p: number[], grads: number[][], lr: number, b1: number, b2: number, eps: number, wd: number): number[] {
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const w = [...p];
  grads.forEach((g, s) => {
    const t = s + 1;
    for (let i = 0; i < w.length; i++) {
      w[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2;
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - b2 ** t) + eps;
      w[i] -= (lr / (1 - b1 ** t)) * (m[i] / denom);
    }
  });
  return w;
}

describe("optimizers", () => {
  it("AdamW matches torch's update rule over several steps (GPU and oracle)", async () => {
    const gpu = await getGpu();
    const p0 = [0.5, -1.25, 2, 0, 3e-3, -7];
    const grads = [
      [0.1, -0.2, 0.3, 0, 1e-4, 5],
      [-0.3, 0.2, 0.1, 1, -1e-4, 4],
      [0.05, 0.05, -0.5, -1, 2e-4, -3],
    ];
    const want = adamwReference(p0, grads, 1e-2, 0.9, 0.95, 1e-8, 0.1);
    for (const backend of [cpu, gpu]) {
      const p = T.tensor(p0, undefined, { backend, requiresGrad: true });
      const opt = new T.AdamW([p], { lr: 1e-2, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.1 });
      for (const g of grads) {
        p.grad = T.keep(T.tensor(g, undefined, { backend }));
        opt.step();
        opt.zeroGrad();
      }
      expectClose(await p.data(), want, 1e-6, 1e-6, `adamw ${backend.kind}`);
    }
  });
  it("SGD with momentum and weight decay", async () => {
    const gpu = await getGpu();
    const p = T.tensor([1, -2], undefined, { backend: gpu, requiresGrad: true });
    const opt = new T.SGD([p], { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
    for (let i = 0; i < 2; i++) {
      p.grad = T.keep(T.tensor([0.5, 0.5], undefined, { backend: gpu }));
      opt.step();
    }
    // torch: d = g + wd·p; buf = d (step 1), buf = 0.9·buf + d; p -= lr·buf
    let w = [1, -2];
    let buf: number[] = [];
    for (let i = 0; i < 2; i++) {
      const d = w.map((x) => 0.5 + 0.01 * x);
      buf = i === 0 ? d : buf.map((b, k) => 0.9 * b + d[k]);
      w = w.map((x, k) => x - 0.1 * buf[k]);
    }
    expectClose(await p.data(), w, 1e-6, 1e-6, "sgd");
  });
  it("schedules follow HF transformers (warmup = ceil(ratio·total))", () => {
    const cos = T.lrSchedule("cosine", { totalSteps: 100, warmupRatio: 0.03 });
    expect(cos(0)).toBe(0);
    expect(cos(1)).toBeCloseTo(1 / 3, 12);
    expect(cos(3)).toBe(1);
    expect(cos(51.5)).toBeCloseTo(0.5, 12);
    expect(cos(100)).toBeCloseTo(0, 12);
    const lin = T.lrSchedule("linear", { totalSteps: 10, warmupSteps: 2 });
    expect([0, 1, 2, 6, 10].map(lin)).toEqual([0, 0.5, 1, 0.5, 0]);
    expect(T.lrSchedule("constant", { totalSteps: 5 })(3)).toBe(1);
    expect(() => T.lrSchedule("wavy" as T.ScheduleKind, { totalSteps: 5 })).toThrow(/unknown schedule/);
  });
  it("clipGradNorm scales by maxNorm/(‖g‖+1e-6) on the device", async () => {
    const gpu = await getGpu();
    const a = T.tensor([3, 0], undefined, { backend: gpu, requiresGrad: true });
    const b = T.tensor([0, 4], undefined, { backend: gpu, requiresGrad: true });
    a.grad = T.keep(T.tensor([3, 0], undefined, { backend: gpu }));
    b.grad = T.keep(T.tensor([0, 4], undefined, { backend: gpu }));
    const norm = T.clipGradNorm([a, b], 1)!;
    expect(await norm.item()).toBeCloseTo(5, 6);
    const s = 1 / (5 + 1e-6);
    expectClose(await a.grad!.data(), [3 * s, 0], 1e-7, 1e-6, "clip a");
    expectClose(await b.grad!.data(), [0, 4 * s], 1e-7, 1e-6, "clip b");
    const n2 = T.clipGradNorm([a, b], 10)!;
    expect(await n2.item()).toBeCloseTo(1, 5);
    expectClose(await a.grad!.data(), [3 * s, 0], 1e-7, 1e-6, "no clip below max");
  });
});

describe("memory discipline", () => {
  it("a 500-step MLP training loop keeps GPU memory flat", async () => {
    const gpu = await getGpu();
    T.setDefaultBackend(gpu);
    const l1 = new T.Linear(16, 32, { backend: gpu, bias: true, seed: 1 });
    const l2 = new T.Linear(32, 4, { backend: gpu, bias: true, seed: 2 });
    const params = [...l1.trainableParameters(), ...l2.trainableParameters()];
    const opt = new T.AdamW(params, { lr: 1e-2, weightDecay: 0 });
    const x = T.randn([8, 16], { backend: gpu, seed: 5 });
    const y = T.tensor(new Int32Array([0, 1, 2, 3, 0, 1, 2, 3]), [8], { backend: gpu });
    const step = () => {
      const loss = T.tidy(() => {
        const h = T.silu(l1.forward(x));
        const l = T.crossEntropy(l2.forward(h), y);
        T.backward(l);
        return l;
      });
      opt.step();
      opt.zeroGrad();
      return loss;
    };
    const first = step();
    const firstLoss = await first.item();
    first.dispose();
    const after = gpu.memory();
    let last = 0;
    for (let i = 1; i < 500; i++) {
      const l = step();
      if (i % 100 === 99) last = await l.item();
      l.dispose();
    }
    await gpu.sync();
    const end = gpu.memory();
    expect(end.bytesInUse).toBe(after.bytesInUse);
    expect(end.storages).toBe(after.storages);
    expect(end.bytesPooled).toBeLessThanOrEqual(after.bytesPooled + 64 * 1024);
    expect(last).toBeLessThan(firstLoss * 0.2);
  });
});
