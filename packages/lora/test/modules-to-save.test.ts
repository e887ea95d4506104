// modules_to_save (peft's ModulesToSaveWrapper on a Linear): a trainable copy per adapter under peft's
// names, the teacher and disabled views on the original, save/load as `base_model.model.<path>.weight`.
import { openSafetensors } from "@balora/safetensors";
import * as T from "@balora/tensor";
import { describe, expect, it } from "vitest";
import * as L from "../src/index.js";
import { cpu, maxDiff, TinyNet } from "./helpers.js";

const x = T.tensor(
  Array.from({ length: 3 * 6 }, (_, i) => Math.sin(i + 1)),
  [3, 6],
  { backend: cpu },
);
const out = async (net: TinyNet) => Array.from(await T.noGrad(() => net.forward(x)).data());

describe("modules_to_save", () => {
  it("wraps the layer with a trainable copy under peft's names; teacher and disabled views run the original", async () => {
    const net = new TinyNet(cpu);
    const before = await out(net);
    L.injectAdapter(net, { target_modules: ["q_proj"], r: 2, modules_to_save: ["lm_head"] }, { seed: 1 });
    expect(net.lm_head).toBeInstanceOf(L.ModulesToSaveLinear);
    const names = net.namedTrainableParameters().map(([n]) => n);
    expect(names.filter((n) => n.startsWith("lm_head"))).toEqual(["lm_head.modules_to_save.default.weight"]);
    expect([...net.namedParameters()].map(([n]) => n)).toContain("lm_head.original_module.weight");
    expect(maxDiff(await out(net), before)).toBe(0); // the copy starts equal to the original
    const w = net.lm_head as unknown as L.ModulesToSaveLinear;
    T.copyInto(w.copies.get("default")!.params.weight, T.mul(w.original_module.weight, 2));
    const trained = await out(net);
    expect(
      maxDiff(
        trained,
        before.map((v) => 2 * v),
      ),
    ).toBeLessThan(1e-12); // q_proj's B is 0: only the head changed
    expect(maxDiff(await L.withInitialAdapters(net, () => out(net)), before)).toBe(0);
    expect(maxDiff(await L.disableAdapters(net, () => out(net)), before)).toBe(0);
    L.markInitialState(net);
    expect(maxDiff(await L.withInitialAdapters(net, () => out(net)), trained)).toBe(0);
  });

  it("saves the copy as base_model.model.<path>.weight with modules_to_save in the config, and loads it back", async () => {
    const net = new TinyNet(cpu);
    L.injectAdapter(net, { target_modules: ["q_proj"], r: 2, init_lora_weights: false, modules_to_save: ["lm_head"] }, { seed: 1 });
    const w = net.lm_head as unknown as L.ModulesToSaveLinear;
    T.copyInto(w.copies.get("default")!.params.weight, T.add(w.original_module.weight, 0.5));
    const want = await out(net);
    const files = await L.adapterFiles(net);
    expect(JSON.parse(files[L.CONFIG_FILE]).modules_to_save).toEqual(["lm_head"]);
    const file = await openSafetensors(files[L.WEIGHTS_FILE]);
    expect(file.names.filter((k) => !k.includes("lora_"))).toEqual(["base_model.model.lm_head.weight"]);
    const fresh = new TinyNet(cpu);
    await L.loadAdapter(fresh, files, { trainable: true });
    expect(maxDiff(await out(fresh), want)).toBeLessThan(1e-6);
    expect(fresh.namedTrainableParameters().map(([n]) => n)).toContain("lm_head.modules_to_save.default.weight");
    // The initial state from a file (the teacher of a resumed run), then merge-and-unload keeps the trained copy.
    const start = new TinyNet(cpu);
    L.injectAdapter(start, { target_modules: ["q_proj"], r: 2, init_lora_weights: false, modules_to_save: ["lm_head"] }, { seed: 1 });
    await L.loadInitialState(fresh, await L.adapterFiles(start));
    expect(maxDiff(await L.withInitialAdapters(fresh, () => out(fresh)), await out(start))).toBeLessThan(1e-6);
    L.mergeAndUnload(fresh);
    expect(fresh.lm_head).toBeInstanceOf(T.Linear);
    expect(maxDiff(await out(fresh), want)).toBeLessThan(1e-6);
  });

  it("is never a LoRA target, and deleting the adapter restores the original layer", async () => {
    const net = new TinyNet(cpu);
    const original = net.lm_head;
    const r = L.injectAdapter(net, { target_modules: ["q_proj", "lm_head"], r: 2, modules_to_save: ["lm_head"] });
    expect(r.targets).toEqual(["model.layers.0.q_proj", "model.layers.1.q_proj"]);
    L.injectAdapter(net, { target_modules: "all-linear", r: 2 }, { adapterName: "second" });
    expect(L.loraLayers(net).some(([p]) => p.startsWith("lm_head"))).toBe(false);
    L.deleteAdapter(net, "default");
    expect(net.lm_head).toBe(original);
    expect(() => L.loraConfig({ modules_to_save: [1] as never })).toThrow(/LoraConfig\.modules_to_save: must be null or a list/);
  });
});

describe("addModulesToSave", () => {
  it("adds a trainable copy to an adapter injected without one, and it is saved with the adapter", async () => {
    const net = new TinyNet(cpu);
    L.injectAdapter(net, { target_modules: ["q_proj"], r: 2 });
    expect(L.addModulesToSave(net, ["lm_head", "classifier"])).toEqual(["lm_head"]);
    expect(L.addModulesToSave(net, ["lm_head"])).toEqual([]);
    expect(net.namedTrainableParameters().map(([n]) => n)).toContain("lm_head.modules_to_save.default.weight");
    const w = net.lm_head as unknown as L.ModulesToSaveLinear;
    expect(w.active).toBe("default");
    expect(JSON.parse((await L.adapterFiles(net))[L.CONFIG_FILE]).modules_to_save).toEqual(["lm_head", "classifier"]);
  });
});
