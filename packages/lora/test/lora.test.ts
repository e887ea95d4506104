import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@balora/tensor";
import { describe, expect, it } from "vitest";
import * as L from "../src/index.js";
import { cpu, getGpu, maxDiff, TinyNet } from "./helpers.js";

const x = (backend: T.Backend) =>
  T.tensor(
    Array.from({ length: 2 * 3 * 6 }, (_, i) => Math.sin(i)),
    [2, 3, 6],
    { backend },
  );
const paths = (net: T.Module) => L.loraLayers(net).map(([p]) => p);

describe("LoraConfig", () => {
  it("fills peft defaults and rejects unsupported values naming the field", () => {
    const c = L.loraConfig({});
    expect([c.r, c.lora_alpha, c.lora_dropout, c.init_lora_weights, c.bias]).toEqual([8, 8, 0, true, "none"]);
    expect(() => L.loraConfig({ r: 0 })).toThrow(/LoraConfig\.r: must be a positive integer, got 0/);
    expect(() => L.loraConfig({ init_lora_weights: "olora" as never })).toThrow(/LoraConfig\.init_lora_weights: "olora" is not supported/);
    expect(() => L.loraConfig({ bias: "all" as never })).toThrow(/LoraConfig\.bias/);
    expect(() => L.loraConfig({ modules_to_save: "lm_head" as never })).toThrow(/modules_to_save: must be null or a list of module names/);
    expect(L.loraConfig({ modules_to_save: ["score"] }).modules_to_save).toEqual(["score"]);
    expect(() => L.loraConfig({ target_modules: ".*q_proj", layers_to_transform: [1] })).toThrow(/layers_to_transform/);
    expect(L.loraConfig({ init_lora_weights: "pissa_niter_16" }).init_lora_weights).toBe("pissa_niter_16");
  });
  it("rank/alpha patterns: first key with (.*\\.)?(key)$, rsLoRA scaling α/√r", () => {
    const c = L.loraConfig({
      r: 4,
      lora_alpha: 16,
      use_rslora: true,
      rank_pattern: { o_proj: 2, "layers.1.mlp.down_proj": 6 },
      alpha_pattern: { k_proj: 3 },
    });
    expect(L.resolveModuleParams(c, "model.layers.0.self_attn.o_proj")).toEqual({ r: 2, alpha: 16, scaling: 16 / Math.SQRT2 });
    expect(L.resolveModuleParams(c, "model.layers.1.mlp.down_proj").r).toBe(6);
    expect(L.resolveModuleParams(c, "model.layers.0.mlp.down_proj").r).toBe(4);
    expect(L.resolveModuleParams(c, "model.layers.0.self_attn.k_proj")).toEqual({ r: 4, alpha: 3, scaling: 1.5 });
    expect(L.patternKey(["proj"], "model.layers.0.q_proj")).toBeNull();
  });
});

describe("target matching (peft's rules)", () => {
  const c = (o: Partial<L.LoraConfig>) => L.loraConfig(o);
  const key = "model.layers.1.mlp.down_proj";
  it("list: exact path or whole-segment suffix; regex string: full match", () => {
    expect(L.isTarget(c({}), ["down_proj"], key)).toBe(true);
    expect(L.isTarget(c({}), ["mlp.down_proj"], key)).toBe(true);
    expect(L.isTarget(c({}), ["proj"], key)).toBe(false);
    expect(L.isTarget(c({}), "down_proj", key)).toBe(false);
    expect(L.isTarget(c({}), ".*\\.layers\\.1\\..*_proj", key)).toBe(true);
  });
  it("layers_to_transform filters suffix matches by the first numbered segment; exact paths bypass it", () => {
    expect(L.isTarget(c({ layers_to_transform: [0] }), ["down_proj"], key)).toBe(false);
    expect(L.isTarget(c({ layers_to_transform: 1 }), ["down_proj"], key)).toBe(true);
    expect(L.isTarget(c({ layers_to_transform: [0] }), [key], key)).toBe(true);
    expect(L.isTarget(c({ layers_to_transform: [1], layers_pattern: "layers" }), ["down_proj"], key)).toBe(true);
  });
  it("exclude_modules wins", () => {
    expect(L.isTarget(c({ exclude_modules: ["down_proj"] }), ["down_proj"], key)).toBe(false);
    expect(L.isTarget(c({ exclude_modules: ".*layers\\.1.*" }), ["down_proj"], key)).toBe(false);
  });
});

describe("injection and forward", () => {
  it("targets by suffix, all-linear skips lm_head, clear error when nothing matches", async () => {
    const net = new TinyNet(cpu);
    L.injectAdapter(net, { target_modules: "all-linear", r: 2 });
    expect(paths(net)).toEqual([0, 1].flatMap((i) => ["q_proj", "v_proj", "down_proj"].map((s) => `model.layers.${i}.${s}`)));
    const other = new TinyNet(cpu);
    expect(() => L.injectAdapter(other, { target_modules: ["qkv_proj"] })).toThrow(
      /target_modules \["qkv_proj"\] match no Linear layer of the model \(its Linear layers end in: q_proj, v_proj, down_proj, lm_head\)/,
    );
    expect(L.trainableReport(net).line).toMatch(/^trainable params: \d[\d,]* \|\| all params: [\d,]+ \|\| trainable%: \d+\.\d{4}$/);
  });
  it("y = base(x) + s·B(A(x)): WebGPU vs the float64 oracle, gradients of A and B vs finite differences", async () => {
    const gpu = await getGpu();
    const outs: Float32Array[] = [];
    const grads: Float32Array[][] = [];
    for (const backend of [cpu, gpu]) {
      const net = new TinyNet(backend);
      L.injectAdapter(net, { target_modules: ["q_proj", "down_proj"], r: 3, lora_alpha: 6, init_lora_weights: false }, { seed: 4 });
      const loss = T.tidy(() => {
        const l = T.sum(T.square(net.forward(x(backend))));
        T.backward(l);
        return l;
      });
      outs.push(Float32Array.from(await loss.data()));
      const params = net.trainableParameters();
      expect(params.every((p) => p.name === undefined || !p.name.endsWith("base_layer.weight"))).toBe(true);
      grads.push(await Promise.all(params.map(async (p) => Float32Array.from(await p.grad!.data()))));
      // finite differences on the oracle for one entry of each adapter tensor
      if (backend === cpu) {
        for (const p of params) {
          const d = (p.storage as unknown as { data: Float64Array }).data;
          const h = 1e-6;
          const f = () => T.noGrad(() => (T.sum(T.square(net.forward(x(cpu)))).storage as unknown as { data: Float64Array }).data[0]);
          const k = Math.min(1, d.length - 1);
          const orig = d[k];
          d[k] = orig + h;
          const fp = f();
          d[k] = orig - h;
          const fm = f();
          d[k] = orig;
          expect(Math.abs((fp - fm) / (2 * h) - (await p.grad!.data())[k])).toBeLessThan(1e-5 * Math.max(1, Math.abs(fp)));
        }
      }
    }
    expect(Math.abs(outs[0][0] - outs[1][0]) / Math.abs(outs[0][0])).toBeLessThan(1e-5);
    grads[0].forEach((g, i) => expect(maxDiff(g, grads[1][i])).toBeLessThan(1e-4));
  });
  it("zero-init LoRA (with dropout configured) leaves the output unchanged in train and eval mode", async () => {
    const gpu = await getGpu();
    const net = new TinyNet(gpu);
    const before = await T.noGrad(() => net.forward(x(gpu))).data();
    L.injectAdapter(net, { target_modules: ["q_proj"], lora_dropout: 0.5 });
    expect(maxDiff(await T.noGrad(() => net.forward(x(gpu))).data(), before)).toBe(0);
    net.eval();
    expect(maxDiff(await T.noGrad(() => net.forward(x(gpu))).data(), before)).toBe(0);
  });
});

describe("merge, variants, PiSSA, teacher view", () => {
  it("merge/unmerge are exact in f32 (LoRA and DoRA); bf16 bases merge with one rounding", async () => {
    const gpu = await getGpu();
    for (const use_dora of [false, true]) {
      const net = new TinyNet(gpu);
      L.injectAdapter(net, { target_modules: ["q_proj", "v_proj"], r: 2, init_lora_weights: false, use_dora });
      const unmerged = await T.noGrad(() => net.forward(x(gpu))).data();
      const w0 = await (net.model.layers[0].q_proj as L.LoraLinear).base_layer.weight.data();
      L.mergeAdapters(net);
      expect(maxDiff(await T.noGrad(() => net.forward(x(gpu))).data(), unmerged)).toBeLessThan(1e-5);
      L.unmergeAdapters(net);
      expect(maxDiff(await (net.model.layers[0].q_proj as L.LoraLinear).base_layer.weight.data(), w0)).toBeLessThan(1e-6);
    }
    const half = new TinyNet(gpu, "bf16");
    L.injectAdapter(half, { target_modules: ["q_proj"], r: 2, init_lora_weights: false });
    const u = await T.noGrad(() => half.forward(x(gpu))).data();
    L.mergeAdapters(half);
    expect((half.model.layers[0].q_proj as L.LoraLinear).base_layer.weight.dtype).toBe("bf16");
    expect(maxDiff(await T.noGrad(() => half.forward(x(gpu))).data(), u)).toBeLessThan(5e-2);
  });
  it("PiSSA: W_res + s·B0·A0 = W, unchanged output at init; the teacher view is the original model as training moves", async () => {
    const gpu = await getGpu();
    const net = new TinyNet(gpu);
    const before = await T.noGrad(() => net.forward(x(gpu))).data();
    const W = await (net.model.layers[0].down_proj as T.Linear).weight.data();
    L.injectAdapter(net, { target_modules: ["down_proj", "q_proj"], r: 2, lora_alpha: 4, init_lora_weights: "pissa" });
    const layer = net.model.layers[0].down_proj as L.LoraLinear;
    const st = layer.adapters.get("default")!;
    const res = await layer.base_layer.weight.data();
    const d = await T.noGrad(() => L.deltaWeight(st.scaling, st.params)).data();
    expect(
      maxDiff(
        Float32Array.from(res, (v, i) => v + d[i]),
        W,
      ),
    ).toBeLessThan(1e-6);
    expect(maxDiff(await T.noGrad(() => net.forward(x(gpu))).data(), before)).toBeLessThan(1e-5);
    // one optimizer step moves the student; the teacher stays the pre-trained model
    const opt = new T.AdamW(net.trainableParameters(), { lr: 0.05, weightDecay: 0 });
    T.tidy(() => T.backward(T.sum(net.forward(x(gpu)))));
    opt.step();
    expect(maxDiff(await T.noGrad(() => net.forward(x(gpu))).data(), before)).toBeGreaterThan(1e-3);
    const teacher = await L.withInitialAdapters(net, () => T.noGrad(() => net.forward(x(gpu))).data());
    expect(maxDiff(teacher, before)).toBeLessThan(1e-5);
  });
  it("a variant is a plugin: registered by name, picked from the config, unknown names fail clearly", () => {
    expect(L.registeredVariants()).toEqual(expect.arrayContaining(["lora", "dora"]));
    expect(() => L.injectAdapter(new TinyNet(cpu), { target_modules: ["q_proj"], variant: "vera" })).toThrow(
      /adapter variant "vera" is not registered \(registered: lora, dora/,
    );
  });
});

describe("adapter directories", () => {
  it("save → load round trip (two adapters, DoRA), and clear errors for bad directories", async () => {
    const gpu = await getGpu();
    const dir = await mkdtemp(join(tmpdir(), "balora-lora-"));
    try {
      const net = new TinyNet(gpu);
      L.injectAdapter(net, { target_modules: ["q_proj", "down_proj"], r: 2, init_lora_weights: false, use_dora: true }, { seed: 1 });
      L.injectAdapter(net, { target_modules: ["v_proj"], r: 3, init_lora_weights: false }, { adapterName: "second", seed: 2 });
      L.setAdapter(net, ["default", "second"]);
      const want = await T.noGrad(() => net.forward(x(gpu))).data();
      await L.saveAdapter(net, dir);
      await L.saveAdapter(net, dir, { adapterName: "second" });
      const fresh = new TinyNet(gpu);
      await L.loadAdapter(fresh, dir);
      await L.loadAdapter(fresh, join(dir, "second"), { adapterName: "second" });
      L.setAdapter(fresh, ["default", "second"]);
      expect(maxDiff(await T.noGrad(() => fresh.forward(x(gpu))).data(), want)).toBeLessThan(1e-6);

      await expect(L.loadAdapter(new TinyNet(gpu), join(dir, "nope"))).rejects.toThrow(/nope: not an adapter directory/);
      const cfg = JSON.parse(await readFile(join(dir, "adapter_config.json"), "utf8"));
      await writeFile(join(dir, "adapter_config.json"), JSON.stringify({ ...cfg, r: 5 }));
      await expect(L.loadAdapter(new TinyNet(gpu), dir)).rejects.toThrow(/lora_A\.weight has shape \[2,6\], the base model needs \[5,6\]/);
      await writeFile(join(dir, "adapter_config.json"), JSON.stringify({ ...cfg, target_modules: ["q_proj"] }));
      await expect(L.loadAdapter(new TinyNet(gpu), dir)).rejects.toThrow(/unexpected base_model\.model\.model\.layers\.0\.down_proj/);
      await writeFile(join(dir, "adapter_config.json"), JSON.stringify({ ...cfg, target_modules: ["w_proj"] }));
      await expect(L.loadAdapter(new TinyNet(gpu), dir)).rejects.toThrow(L.AdapterFormatError);
      await writeFile(join(dir, "adapter_config.json"), JSON.stringify({ ...cfg, peft_type: "IA3" }));
      await expect(L.loadAdapter(new TinyNet(gpu), dir)).rejects.toThrow(/only LoRA adapters/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
