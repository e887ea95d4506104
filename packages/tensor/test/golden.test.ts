// Checks ops against PyTorch goldens (scripts/golden/tensor_ops.py, float64, HF formulas).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { cpu, expectClose, getGpu } from "./helpers.js";

type Case = Record<string, number[] | number>;
const golden = JSON.parse(readFileSync(new URL("./golden/torch-ops.json", import.meta.url), "utf8")) as { cases: Record<string, Case> };
const c = (name: string) => golden.cases[name];
const arr = (v: number[] | number) => v as number[];
const shp = (v: number[] | number) => v as number[];

async function backends(): Promise<T.Backend[]> {
  return [cpu, await getGpu()];
}

describe("PyTorch goldens", () => {
  it("activations: gelu (tanh and exact), silu, sigmoid, tanh", async () => {
    const g = c("activations");
    for (const b of await backends()) {
      const x = T.tensor(arr(g.x), undefined, { backend: b });
      const tol = b.kind === "cpu" ? 1e-12 : 1e-6;
      expectClose(await T.gelu(x).data(), arr(g.gelu_tanh), tol, tol, `gelu tanh ${b.kind}`);
      expectClose(await T.geluExact(x).data(), arr(g.gelu), tol, tol, `gelu ${b.kind}`);
      expectClose(await T.silu(x).data(), arr(g.silu), tol, tol, `silu ${b.kind}`);
      expectClose(await T.sigmoid(x).data(), arr(g.sigmoid), tol, tol, `sigmoid ${b.kind}`);
      expectClose(await T.tanh(x).data(), arr(g.tanh), tol, tol, `tanh ${b.kind}`);
    }
  });

  it("log-softmax and softmax at ±1e4", async () => {
    const g = c("log_softmax");
    for (const b of await backends()) {
      const x = T.tensor(arr(g.x), shp(g.shape), { backend: b });
      expectClose(await T.logSoftmax(x).data(), arr(g.y), 1e-6, 1e-7, `logSoftmax ${b.kind}`);
      expectClose(await T.softmax(x).data(), arr(g.s), 1e-7, 1e-6, `softmax ${b.kind}`);
    }
  });

  for (const name of ["rmsnorm_llama", "rmsnorm_gemma"]) {
    it(`${name}: output and gradients`, async () => {
      const g = c(name);
      for (const b of await backends()) {
        const x = T.tensor(arr(g.x), shp(g.shape), { backend: b, requiresGrad: true });
        const w = T.tensor(arr(g.w), [arr(g.w).length], { backend: b, requiresGrad: true });
        const y = T.rmsNorm(x, w, { eps: g.eps as number, offset: g.off as number });
        T.backward(y, { grad: T.tensor(arr(g.g), shp(g.shape), { backend: b }) });
        const tol = b.kind === "cpu" ? 1e-10 : 2e-5;
        expectClose(await y.data(), arr(g.y), tol, tol, `y ${b.kind}`);
        expectClose(await x.grad!.data(), arr(g.dx), tol, tol, `dx ${b.kind}`);
        expectClose(await w.grad!.data(), arr(g.dw), tol, tol, `dw ${b.kind}`);
      }
    });
  }

  it("rope: HF rotate_half with f32 angles, positions up to 70000", async () => {
    const g = c("rope");
    for (const b of await backends()) {
      const x = T.tensor(arr(g.x), shp(g.shape), { backend: b, requiresGrad: true });
      const inv = T.tensor(arr(g.inv_freq), [arr(g.inv_freq).length], { backend: b });
      const pos = T.tensor(new Int32Array(arr(g.pos)), [2, 4], { backend: b });
      const y = T.rope(x, inv, { layout: "bhtd", positions: pos });
      T.backward(y, { grad: T.tensor(arr(g.g), shp(g.shape), { backend: b }) });
      // torch's f32 cos/sin of the f32 angle vs ours: equal to a few f32 ulps of the angle
      const tol = b.kind === "cpu" ? 1e-6 : 2e-5;
      expectClose(await y.data(), arr(g.y), tol, tol, `rope ${b.kind}`);
      expectClose(await x.grad!.data(), arr(g.dx), tol, tol, `rope dx ${b.kind}`);
    }
  });

  for (const name of ["attention_gqa", "attention_window_softcap", "attention_cache"]) {
    it(`${name}: HF eager attention output and q/k/v gradients`, async () => {
      const g = c(name);
      for (const b of await backends()) {
        const mk = (k: string, s: string) => T.tensor(arr(g[k]), shp(g[s]), { backend: b, requiresGrad: true });
        const [q, k, v] = [mk("q", "qshape"), mk("k", "kshape"), mk("v", "kshape")];
        const kshape = shp(g.kshape);
        const km = T.tensor(arr(g.key_mask), [kshape[0], kshape[2]], { backend: b });
        const y = T.attention(q, k, v, { scale: g.scale as number, window: g.window as number, softcap: g.cap as number, keyMask: km });
        T.backward(y, { grad: T.tensor(arr(g.g), shp(g.qshape), { backend: b }) });
        const tol = b.kind === "cpu" ? 1e-10 : 2e-5;
        expectClose(await y.data(), arr(g.y), tol, tol, `y ${b.kind}`);
        expectClose(await q.grad!.data(), arr(g.dq), tol, tol, `dq ${b.kind}`);
        expectClose(await k.grad!.data(), arr(g.dk), tol, tol, `dk ${b.kind}`);
        expectClose(await v.grad!.data(), arr(g.dv), tol, tol, `dv ${b.kind}`);
      }
    });
  }

  it("cross-entropy with ignore_index -100", async () => {
    const g = c("cross_entropy");
    for (const b of await backends()) {
      const x = T.tensor(arr(g.x), shp(g.shape), { backend: b, requiresGrad: true });
      const l = T.crossEntropy(x, T.tensor(new Int32Array(arr(g.labels)), [arr(g.labels).length], { backend: b }));
      T.backward(l);
      const tol = b.kind === "cpu" ? 1e-12 : 2e-6;
      expect(Math.abs((await l.item()) - (g.loss as number))).toBeLessThan(tol * 10);
      expectClose(await x.grad!.data(), arr(g.dx), tol, tol, `dx ${b.kind}`);
    }
  });

  it("AdamW: four torch.optim.AdamW steps", async () => {
    const g = c("adamw");
    const grads = arr(g.grads);
    for (const b of await backends()) {
      const p = T.tensor(arr(g.p0), undefined, { backend: b, requiresGrad: true });
      const opt = new T.AdamW([p], {
        lr: g.lr as number,
        betas: [g.b1 as number, g.b2 as number],
        eps: g.eps as number,
        weightDecay: g.wd as number,
      });
      for (let s = 0; s < 4; s++) {
        p.grad = T.keep(T.tensor(grads.slice(s * 7, s * 7 + 7), undefined, { backend: b }));
        opt.step();
      }
      const tol = b.kind === "cpu" ? 1e-12 : 1e-6;
      expectClose(await p.data(), arr(g.p), tol, tol, `adamw ${b.kind}`);
    }
  });

  it("clip_grad_norm_", async () => {
    const g = c("clip_grad_norm");
    for (const b of await backends()) {
      const a = T.zeros([5], { backend: b, requiresGrad: true });
      const w = T.zeros([3, 2], { backend: b, requiresGrad: true });
      a.grad = T.keep(T.tensor(arr(g.ga), [5], { backend: b }));
      w.grad = T.keep(T.tensor(arr(g.gb), [3, 2], { backend: b }));
      const n = T.clipGradNorm([a, w], g.max_norm as number)!;
      expect(Math.abs((await n.item()) - (g.norm as number))).toBeLessThan(1e-6);
      expectClose(await a.grad!.data(), arr(g.ca), 1e-7, 1e-6, "a");
      expectClose(await w.grad!.data(), arr(g.cb), 1e-7, 1e-6, "b");
    }
  });

  it("cosine schedule with warmup ratio", () => {
    const g = c("cosine_schedule");
    const f = T.lrSchedule("cosine", { totalSteps: g.total as number, warmupRatio: g.ratio as number });
    expectClose(
      Array.from({ length: (g.total as number) + 1 }, (_, s) => f(s)),
      arr(g.factors),
      1e-15,
      1e-15,
      "cosine",
    );
  });
});
