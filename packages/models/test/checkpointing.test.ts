// Gradient checkpointing of decoder layers: a LoRA step with it gives the same loss and adapter
// gradients as without (dropout included), and holds fewer tensors between forward and backward.
import * as L from "@balora/lora";
import * as T from "@balora/tensor";
import { describe, expect, it } from "vitest";
import { type CausalLM, loadModel } from "../src/index.js";
import { fixture, getGpu } from "./helpers.js";

describe("gradient checkpointing", () => {
  it("gives identical updates and keeps fewer activations", async () => {
    const backend = await getGpu();
    const run = async (ckpt: boolean) => {
      const model = (await loadModel(fixture("llama-f32"), { backend })) as CausalLM;
      L.injectAdapter(
        model,
        { r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: "all-linear", init_lora_weights: false },
        { seed: 3 },
      );
      L.setDropoutDraw(model, 5);
      model.model.gradientCheckpointing = ckpt;
      const ids = T.tensor(Int32Array.from([1, 5, 9, 33, 7, 2, 1, 44, 12, 3, 9, 200]), [2, 6], { backend });
      await backend.sync();
      const before = backend.memory().storages;
      const loss = model.loss(model.forward(ids), ids);
      const held = backend.memory().storages - before;
      T.backward(loss);
      const grads = await Promise.all(
        model.namedTrainableParameters().map(async ([n, p]) => [n, Array.from(await p.grad!.data())] as const),
      );
      const value = await loss.item();
      for (const t of [ids, loss]) t.dispose();
      model.dispose();
      return { held, grads, value };
    };
    const [plain, ckpt] = [await run(false), await run(true)];
    expect(ckpt.value).toBeCloseTo(plain.value, 5);
    expect(ckpt.grads.length).toBe(plain.grads.length);
    ckpt.grads.forEach(([n, g], i) => g.forEach((v, j) => expect(Math.abs(v - plain.grads[i][1][j]), n).toBeLessThan(1e-5)));
    expect(ckpt.held).toBeLessThan(plain.held / 2);
  });
});
