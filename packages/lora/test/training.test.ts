// What a LoRA training loop relies on: a synchronous teacher view (one synchronous tidy per step),
// dropout masks keyed by (seed, draw, layer path), and bit-identical weights from identical runs.
import * as T from "@balora/tensor";
import { describe, expect, it } from "vitest";
import * as L from "../src/index.js";
import { cpuOnly, getGpu, TinyNet } from "./helpers.js";

const x = (b: T.Backend) => T.randn([5, 6], { backend: b, seed: 3 });

/** A few AdamW steps of LoRA (dropout 0.1, PiSSA init) with a teacher term; returns every adapter weight. */
async function train(b: T.Backend, steps: number, onStep?: (step: number) => void): Promise<Record<string, number[]>> {
  const net = new TinyNet(b);
  L.injectAdapter(
    net,
    { target_modules: ["q_proj", "v_proj", "down_proj"], r: 2, lora_alpha: 4, lora_dropout: 0.1, init_lora_weights: "pissa" },
    { seed: 9 },
  );
  const opt = new T.AdamW(net.namedTrainableParameters(), { lr: 0.02, weightDecay: 0 });
  const input = x(b);
  for (let step = 0; step < steps; step++) {
    L.setDropoutDraw(net, step);
    onStep?.(step);
    const loss = T.tidy(() => {
      const teacher = L.withInitialAdapters(net, () => T.noGrad(() => net.forward(input)));
      const student = net.forward(input);
      return T.add(T.mean(T.square(student)), T.mean(T.square(T.sub(student, teacher))));
    });
    T.backward(loss);
    loss.dispose();
    opt.step();
    opt.zeroGrad();
  }
  const out: Record<string, number[]> = {};
  for (const [n, t] of net.namedTrainableParameters()) out[n] = Array.from(await t.data());
  opt.dispose();
  net.dispose();
  input.dispose();
  return out;
}

describe("LoRA training loops", () => {
  it("withInitialAdapters returns the value of a synchronous function (no Promise), and a Promise for an async one", async () => {
    const b = await getGpu();
    const net = new TinyNet(b);
    L.injectAdapter(net, { target_modules: ["q_proj"], r: 2, init_lora_weights: false }, { seed: 1 });
    const input = x(b);
    const sync = L.withInitialAdapters(net, () => 42);
    expect(sync).toBe(42);
    const layer = net.model.layers[0].q_proj as L.LoraLinear;
    expect(L.withInitialAdapters(net, () => layer.useInitial)).toBe(true);
    expect(layer.useInitial).toBe(false);
    const later = L.withInitialAdapters(net, async () => layer.useInitial);
    expect(later).toBeInstanceOf(Promise);
    expect(await later).toBe(true);
    expect(() =>
      L.withInitialAdapters(net, () => {
        throw new Error("boom");
      }),
    ).toThrow("boom");
    expect(layer.useInitial).toBe(false);
    input.dispose();
    net.dispose();
  });

  it("two identical runs give bit-identical adapter weights (no order-dependent atomics on the LoRA path)", async () => {
    const b = await getGpu();
    const [first, second] = [await train(b, 4), await train(b, 4)];
    expect(Object.keys(first).length).toBe(12);
    expect(second).toEqual(first);
  });

  it("dropout masks follow the draw set by setDropoutDraw, not a counter: the same draw replays the same step", async () => {
    const b = await getGpu();
    const net = new TinyNet(b);
    L.injectAdapter(net, { target_modules: ["q_proj"], r: 2, lora_dropout: 0.5, init_lora_weights: false }, { seed: 4 });
    const input = x(b);
    const out = async (draw: number) => {
      L.setDropoutDraw(net, draw);
      const y = net.forward(input);
      const v = Array.from(await y.data());
      y.dispose();
      return v;
    };
    const a = await out(7);
    expect(await out(7)).toEqual(a); // the forward count does not matter
    expect(await out(8)).not.toEqual(a);
    net.eval();
    const evalA = await out(7);
    expect(await out(8)).toEqual(evalA); // no dropout in eval mode
    expect(() => L.setDropoutDraw(net, -1)).toThrow(/32-bit unsigned integer/);
    input.dispose();
    net.dispose();
  });

  it.skipIf(cpuOnly)("the same run on the float64 oracle agrees (WebGPU vs oracle)", async () => {
    const [gpu, oracle] = [await train(await getGpu(), 3), await train(T.cpuBackend(), 3)];
    for (const k of Object.keys(oracle)) oracle[k].forEach((v, i) => expect(Math.abs(gpu[k][i] - v), k).toBeLessThan(2e-4));
  });
});

describe("the initial state of an adapter that was saved", () => {
  it("markInitialState and loadInitialState make the teacher base + the saved state; initLoraWeights is written", async () => {
    const b = T.cpuBackend();
    const input = x(b);
    const start = new TinyNet(b);
    L.injectAdapter(start, { target_modules: ["q_proj", "v_proj"], r: 2, init_lora_weights: "gaussian" }, { seed: 4 });
    const startFiles = await L.adapterFiles(start);
    const expected = await T.noGrad(() => start.forward(input)).data(); // base + the starting adapter
    // A run starting from the saved adapter: the loaded state is the teacher, whatever training does to it.
    const run = new TinyNet(b);
    await L.loadAdapter(run, startFiles, { trainable: true });
    L.markInitialState(run);
    for (const [, p] of run.namedTrainableParameters()) T.copyInto(p, T.add(p, 0.5));
    const teacher = await L.withInitialAdapters(run, () => T.noGrad(() => run.forward(input)).data());
    expect(Array.from(teacher)).toEqual(Array.from(expected));
    // The trained adapter saved, loaded elsewhere, with its initial state read from the starting files.
    const trained = await L.adapterFiles(run);
    const other = new TinyNet(b);
    await L.loadAdapter(other, trained);
    await L.loadInitialState(other, startFiles);
    const again = await L.withInitialAdapters(other, () => T.noGrad(() => other.forward(input)).data());
    expect(Array.from(again)).toEqual(Array.from(expected));
    // A state of the wrong shape is refused and the previous initial state kept.
    const wide = new TinyNet(b);
    L.injectAdapter(wide, { target_modules: ["q_proj", "v_proj"], r: 3 }, { seed: 4 });
    await expect(L.loadInitialState(other, await L.adapterFiles(wide))).rejects.toThrow(/does not fit the model: .*has shape/);
    const kept = await L.withInitialAdapters(other, () => T.noGrad(() => other.forward(input)).data());
    expect(Array.from(kept)).toEqual(Array.from(expected));
    // The trained weights copied into a third model's adapter (a resumed run), its PiSSA-free base untouched.
    const resumed = new TinyNet(b);
    L.injectAdapter(resumed, { target_modules: ["q_proj", "v_proj"], r: 2 }, { seed: 99 });
    await L.loadAdapterWeights(resumed, trained);
    const out = await T.noGrad(() => resumed.forward(input)).data();
    expect(Array.from(out)).toEqual(Array.from(await T.noGrad(() => other.forward(input)).data()));
    const pissa = JSON.parse((await L.adapterFiles(run, { initLoraWeights: "pissa" }))["adapter_config.json"]);
    expect(pissa.init_lora_weights).toBe("pissa");
    expect(JSON.parse(trained["adapter_config.json"]).init_lora_weights).toBe(true);
  });

  it("a randomized-PiSSA adapter loads onto the original base with the residual of its initial state (initialState)", async () => {
    const b = T.cpuBackend();
    const input = x(b);
    const config: Partial<L.LoraConfig> = {
      target_modules: ["q_proj", "v_proj", "down_proj"],
      r: 2,
      lora_alpha: 4,
      init_lora_weights: "pissa_niter_1",
    };
    // The run: PiSSA with seed 7 rewrites the base to its residual; training moves the adapter.
    const run = new TinyNet(b);
    L.injectAdapter(run, config, { seed: 7 });
    const initialFiles = await L.adapterFiles(run, { initLoraWeights: "pissa_niter_1" });
    for (const [, p] of run.namedTrainableParameters()) T.copyInto(p, T.add(p, 0.25));
    const trained = await L.adapterFiles(run, { initLoraWeights: "pissa_niter_1" });
    const expected = Array.from(await T.noGrad(() => run.forward(input)).data());
    const teacher = Array.from(await L.withInitialAdapters(run, () => T.noGrad(() => run.forward(input)).data()));
    const maxDiff = (a: number[], e: number[]) => Math.max(...a.map((v, i) => Math.abs(v - e[i])));
    // Re-running the randomized SVD (peft's way, another seed) gives another residual: other logits.
    const rerun = new TinyNet(b);
    await L.loadAdapter(rerun, trained);
    expect(maxDiff(Array.from(await T.noGrad(() => rerun.forward(input)).data()), expected)).toBeGreaterThan(1e-3);
    // From the initial state: the run's residual (to the f32 rounding of the saved B₀, A₀), so the run's logits and its teacher.
    const exact = new TinyNet(b);
    await L.loadAdapter(exact, trained, { initialState: initialFiles });
    expect(maxDiff(Array.from(await T.noGrad(() => exact.forward(input)).data()), expected)).toBeLessThan(1e-6);
    const again = Array.from(await L.withInitialAdapters(exact, () => T.noGrad(() => exact.forward(input)).data()));
    expect(maxDiff(again, teacher)).toBeLessThan(1e-6);
    expect(L.adapterConfigs(exact).get("default")!.init_lora_weights).toBe("pissa_niter_1");
  });

  it("forgetZeroInitialState drops an initial state that adds nothing (plain LoRA), keeps PiSSA's", async () => {
    const b = T.cpuBackend();
    const input = x(b);
    const plain = new TinyNet(b);
    L.injectAdapter(plain, { target_modules: ["q_proj", "v_proj"], r: 2, init_lora_weights: true }, { seed: 4 });
    L.markInitialState(plain);
    expect(await L.forgetZeroInitialState(plain)).toBe(true);
    expect(L.loraLayers(plain).every(([, l]) => l.adapters.get("default")!.initial === null)).toBe(true);
    expect(await L.forgetZeroInitialState(plain)).toBe(false); // nothing left to forget
    const pissa = new TinyNet(b);
    L.injectAdapter(pissa, { target_modules: ["q_proj", "v_proj"], r: 2, init_lora_weights: "pissa" }, { seed: 4 });
    const teacher = Array.from(await L.withInitialAdapters(pissa, () => T.noGrad(() => pissa.forward(input)).data()));
    expect(await L.forgetZeroInitialState(pissa)).toBe(false);
    expect(Array.from(await L.withInitialAdapters(pissa, () => T.noGrad(() => pissa.forward(input)).data()))).toEqual(teacher);
  });
});
