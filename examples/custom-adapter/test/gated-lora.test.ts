// The custom adapter variant as a user would publish it: registered on import, selected by name,
// trained, saved with its own keys and loaded back (on WebGPU, or the oracle with BALORA_BACKEND=cpu).
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as L from "@balora/lora";
import * as T from "@balora/tensor";
import { testBackend } from "@balora/tensor/testing";
import { describe, expect, it } from "vitest";
import "../src/index.js";

class Net extends T.Module {
  q_proj: T.Module & { forward(x: T.Tensor): T.Tensor };
  constructor(backend: T.Backend) {
    super();
    this.q_proj = new T.Linear(4, 3, { backend, seed: 1 });
  }
}

describe("a third-party adapter variant", () => {
  it("registers by name, trains one step, saves and loads with its own keys", async () => {
    const gpu = await testBackend();
    expect(L.registeredVariants()).toContain("gated-lora");
    const net = new Net(gpu);
    L.injectAdapter(net, { target_modules: ["q_proj"], r: 2, variant: "gated-lora", init_lora_weights: false });
    const x = T.tensor([[1, -1, 0.5, 2]], undefined, { backend: gpu });
    const y = T.tensor([[0.5, 0, -1]], undefined, { backend: gpu });
    const params = net.trainableParameters();
    expect(params).toHaveLength(3);
    const opt = new T.AdamW(params, { lr: 0.05, weightDecay: 0 });
    const lossOf = () => T.mean(T.square(T.sub(net.q_proj.forward(x), y)));
    const before = await T.noGrad(lossOf).item();
    T.tidy(() => T.backward(lossOf()));
    const gate = params.find((p) => p.shape.length === 1 && p.shape[0] === 1)!;
    expect(Math.abs((await gate.grad!.data())[0])).toBeGreaterThan(0);
    opt.step();
    const after = await T.noGrad(lossOf).item();
    expect(after).toBeLessThan(before);

    const dir = await mkdtemp(join(tmpdir(), "balora-gated-"));
    try {
      await L.saveAdapter(net, dir);
      const cfg = JSON.parse(await readFile(join(dir, "adapter_config.json"), "utf8"));
      expect(cfg.balora_variant).toBe("gated-lora");
      const fresh = new Net(gpu);
      await L.loadAdapter(fresh, dir);
      expect(await T.noGrad(() => T.mean(T.square(T.sub(fresh.q_proj.forward(x), y)))).item()).toBeCloseTo(after, 6);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
