// @balora/lora on real architectures against adapters and logits written by Python peft 0.21
// (scripts/golden/peft_golden.py; fixtures in test/fixtures/peft, format notes in FORMAT.md).
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { bf16ToFloat32, openSafetensors } from "@balora/safetensors";
import * as L from "@balora/lora";
import { type LanguageModel, loadModel } from "@balora/models";
import * as T from "@balora/tensor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelFixture, testBackend } from "./helpers.js";

const peft = (name: string) => fileURLToPath(new URL(`./fixtures/peft/${name}`, import.meta.url));
// WebGPU, or the float64 CPU backend with BALORA_BACKEND=cpu (the variable keeps its historical name).
let gpu: T.Backend;
beforeAll(async () => {
  gpu = await testBackend();
});
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "balora-peft-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function golden(dir: string): Promise<Map<string, { data: Float64Array; shape: number[] }>> {
  const f = await openSafetensors(join(dir, "golden.safetensors"));
  const m = new Map<string, { data: Float64Array; shape: number[] }>();
  for await (const t of f) {
    const raw = t.dtype === "BF16" ? bf16ToFloat32(t.data as Uint16Array) : (t.data as ArrayLike<number | bigint>);
    m.set(t.name, { data: Float64Array.from(raw as ArrayLike<number>, (v) => Number(v)), shape: t.shape });
  }
  await f.close();
  return m;
}

const caseBase = async (name: string) => JSON.parse(await readFile(join(peft(name), "case.json"), "utf8")).base as string;

async function logitsOf(model: LanguageModel, g: Awaited<ReturnType<typeof golden>>): Promise<Float32Array> {
  const ids = g.get("input_ids")!;
  const mask = g.get("attention_mask")!;
  return (await T.noGrad(() =>
    T.tidy(() =>
      model.forward(T.tensor(Int32Array.from(ids.data), ids.shape, { backend: gpu }), {
        attentionMask: T.tensor(Int32Array.from(mask.data), mask.shape, { backend: gpu }),
      }),
    ),
  ).data()) as Float32Array;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>, mask?: Float64Array, V = 1): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) if (!mask || mask[Math.floor(i / V)] === 1) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function expectLogits(model: LanguageModel, g: Awaited<ReturnType<typeof golden>>, key: string, tol = 1e-4): Promise<void> {
  const want = g.get(key)!;
  const V = want.shape[2];
  expect(maxDiff(await logitsOf(model, g), want.data, g.get("attention_mask")!.data, V), key).toBeLessThan(tol);
}

async function weightOf(model: LanguageModel, path: string): Promise<Float32Array> {
  const m = model.getSubmodule(path);
  const w = m instanceof L.LoraLinear ? m.base_layer.weight : (m as T.Linear).weight;
  return (await w.data()) as Float32Array;
}

describe("adapters written by peft load here with the same logits (unmerged and merged)", () => {
  for (const name of ["llama-lora", "mistral-rslora-patterns", "gemma-regex-layers", "gemma-list-layers", "gemma2-dora"]) {
    it(name, async () => {
      const g = await golden(peft(name));
      const model = await loadModel(modelFixture(await caseBase(name)), { backend: gpu });
      await L.loadAdapter(model, peft(name));
      await expectLogits(model, g, "logits");
      L.mergeAndUnload(model);
      for (const [k, v] of g)
        if (k.startsWith("merged.")) expect(maxDiff(await weightOf(model, k.slice(7, -7)), v.data), k).toBeLessThan(2e-5);
      await expectLogits(model, g, "logits_merged");
      model.dispose();
    });
  }
});

describe("PiSSA", () => {
  it("exact init: W_res + s·B0·A0 = W, residual and A0/B0 match peft up to sign, logits unchanged at init", async () => {
    const g = await golden(peft("llama-pissa"));
    const model = await loadModel(modelFixture("llama-f32"), { backend: gpu });
    const base = await logitsOf(model, g);
    L.injectAdapter(model, {
      r: 4,
      lora_alpha: 8,
      target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
      init_lora_weights: "pissa",
    });
    expect(maxDiff(await logitsOf(model, g), base)).toBeLessThan(2e-5);
    await expectLogits(model, g, "logits_init", 1e-4);
    for (const [path, layer] of L.loraLayers(model)) {
      const st = layer.adapters.get("default")!;
      const res = (await layer.base_layer.weight.data()) as Float32Array;
      expect(maxDiff(res, g.get(`residual.${path}.weight`)!.data), `residual ${path}`).toBeLessThan(5e-5);
      // s·B·A is sign-invariant: compare it with peft's
      const ours = await T.noGrad(() => L.deltaWeight(st.scaling, st.params)).data();
      const { out, inF } = { out: layer.outFeatures, inF: layer.inFeatures };
      const A0 = g.get(`A0.${path}`)!.data;
      const B0 = g.get(`B0.${path}`)!.data;
      const theirs = new Float64Array(out * inF);
      for (let i = 0; i < out; i++)
        for (let j = 0; j < inF; j++) for (let k = 0; k < st.r; k++) theirs[i * inF + j] += st.scaling * B0[i * st.r + k] * A0[k * inF + j];
      expect(maxDiff(ours, theirs), `s·B0·A0 ${path}`).toBeLessThan(5e-5);
      const w = g.get(`base.${path}.weight`)!.data;
      expect(
        maxDiff(
          Float64Array.from(res, (v, i) => v + ours[i]),
          w,
        ),
        `identity ${path}`,
      ).toBeLessThan(2e-6);
    }
    model.dispose();
  });

  it("trained PiSSA adapter on the residual model, and its peft conversion on the original base, give peft's logits", async () => {
    const g = await golden(peft("llama-pissa"));
    const residual = await loadModel(peft("llama-pissa/residual_model"), { backend: gpu });
    await L.loadAdapter(residual, peft("llama-pissa/adapter"));
    await expectLogits(residual, g, "logits");
    residual.dispose();
    const original = await loadModel(modelFixture("llama-f32"), { backend: gpu });
    await L.loadAdapter(original, peft("llama-pissa/converted"));
    await expectLogits(original, g, "logits_converted");
    original.dispose();
  });

  it("our conversion on save equals peft's: the converted adapter on the original base gives the trained logits", async () => {
    const g = await golden(peft("llama-pissa"));
    // Rebuild the PiSSA state from peft's files: residual base, trained A/B, and A0/B0 as the initial state.
    const model = await loadModel(modelFixture("llama-f32"), { backend: gpu });
    L.injectAdapter(model, {
      r: 4,
      lora_alpha: 8,
      target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
      init_lora_weights: "pissa",
    });
    const trained = await openSafetensors(join(peft("llama-pissa/adapter"), "adapter_model.safetensors"));
    for (const [path, layer] of L.loraLayers(model)) {
      const st = layer.adapters.get("default")!;
      for (const key of [L.LORA_A, L.LORA_B]) {
        const t = await trained.readTensor(`base_model.model.${path}.${key}`);
        T.copyInto(st.params[key], T.tensor(t.data as Float32Array, t.shape, { backend: gpu }));
      }
      const A0 = g.get(`A0.${path}`)!;
      const B0 = g.get(`B0.${path}`)!;
      T.copyInto(st.initial![L.LORA_A], T.tensor(A0.data, A0.shape, { backend: gpu }));
      T.copyInto(st.initial![L.LORA_B], T.tensor(B0.data, B0.shape, { backend: gpu }));
      layer.setBaseWeight(T.tensor(g.get(`residual.${path}.weight`)!.data, [layer.outFeatures, layer.inFeatures], { backend: gpu }));
    }
    await trained.close();
    await expectLogits(model, g, "logits");
    const out = join(tmp, "converted");
    await L.saveAdapter(model, out, { convertPissaToLora: true });
    const cfg = JSON.parse(await readFile(join(out, "adapter_config.json"), "utf8"));
    expect([cfg.r, cfg.lora_alpha, cfg.init_lora_weights]).toEqual([8, 16, true]);
    const original = await loadModel(modelFixture("llama-f32"), { backend: gpu });
    await L.loadAdapter(original, out);
    await expectLogits(original, g, "logits_converted");
    model.dispose();
    original.dispose();
  });

  it("pissa_niter_4: W_res + s·B0·A0 = W and the residual is near the optimal rank-r residual", async () => {
    const g = await golden(peft("llama-pissa-niter"));
    const model = await loadModel(modelFixture("llama-f32"), { backend: gpu });
    L.injectAdapter(model, {
      r: 4,
      lora_alpha: 8,
      target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
      init_lora_weights: "pissa_niter_4",
    });
    for (const [path, layer] of L.loraLayers(model)) {
      const st = layer.adapters.get("default")!;
      const res = (await layer.base_layer.weight.data()) as Float32Array;
      const d = await T.noGrad(() => L.deltaWeight(st.scaling, st.params)).data();
      const w = g.get(`base.${path}.weight`)!.data;
      expect(
        maxDiff(
          Float64Array.from(res, (v, i) => v + d[i]),
          w,
        ),
        path,
      ).toBeLessThan(2e-6);
      const norm = (x: ArrayLike<number>) => Math.sqrt(Array.from(x).reduce((s, v) => s + v * v, 0));
      expect(norm(res) / norm(g.get(`residual.${path}.weight`)!.data), path).toBeLessThan(1.1);
    }
    model.dispose();
  });
});

describe("multiple adapters", () => {
  it("peft's multi-adapter directory: each adapter alone, both, disabled, merged", async () => {
    const g = await golden(peft("llama-multi"));
    const model = await loadModel(modelFixture("llama-f32"), { backend: gpu });
    await L.loadAdapter(model, peft("llama-multi"));
    await L.loadAdapter(model, join(peft("llama-multi"), "second"), { adapterName: "second", activate: false });
    expect(L.activeAdapters(model)).toEqual(["default"]);
    await expectLogits(model, g, "logits");
    L.setAdapter(model, "second");
    await expectLogits(model, g, "logits_second");
    L.setAdapter(model, ["default", "second"]);
    await expectLogits(model, g, "logits_both");
    await L.disableAdapters(model, () => expectLogits(model, g, "logits_disabled"));
    await expectLogits(model, g, "logits_both");
    L.mergeAdapters(model);
    await expectLogits(model, g, "logits_merged_both");
    L.unmergeAdapters(model);
    await expectLogits(model, g, "logits_both");
    L.deleteAdapter(model, "default");
    await expectLogits(model, g, "logits_second");
    model.dispose();
  });
});

describe("adapters written here are peft's format", () => {
  it("round trip: config fields, key names, shapes and metadata as peft writes them", async () => {
    const model = await loadModel(modelFixture("llama-f32"), { backend: gpu });
    await L.loadAdapter(model, peft("llama-lora"));
    const out = join(tmp, "llama-lora");
    await L.saveAdapter(model, out);
    const ours = await openSafetensors(join(out, "adapter_model.safetensors"));
    const theirs = await openSafetensors(join(peft("llama-lora"), "adapter_model.safetensors"));
    expect([...ours.names].sort()).toEqual([...theirs.names].sort());
    expect(ours.metadata).toEqual({ format: "pt" });
    for (const n of theirs.names) {
      expect(ours.info(n).shape).toEqual(theirs.info(n).shape);
      expect(Array.from((await ours.readTensor(n)).data as Float32Array)).toEqual(
        Array.from((await theirs.readTensor(n)).data as Float32Array),
      );
    }
    await ours.close();
    await theirs.close();
    const cfgText = await readFile(join(out, "adapter_config.json"), "utf8");
    const cfg = JSON.parse(cfgText);
    const ref = JSON.parse(await readFile(join(peft("llama-lora"), "adapter_config.json"), "utf8"));
    for (const k of [
      "peft_type",
      "r",
      "lora_alpha",
      "lora_dropout",
      "use_rslora",
      "use_dora",
      "init_lora_weights",
      "task_type",
      "bias",
      "fan_in_fan_out",
      "inference_mode",
      "rank_pattern",
      "alpha_pattern",
    ])
      expect(cfg[k], k).toEqual(ref[k]);
    expect([...cfg.target_modules].sort()).toEqual([...ref.target_modules].sort());
    // json.dumps(indent=2, sort_keys=True): sorted keys, 2-space indent, floats keep ".0", no trailing newline
    expect(Object.keys(cfg)).toEqual([...Object.keys(cfg)].sort());
    expect(cfgText).toMatch(/^\{\n {2}"alpha_pattern": \{\},\n/);
    expect(cfgText).toContain('"lora_dropout": 0.0,');
    expect(cfgText.endsWith("}")).toBe(true);
    model.dispose();
  });
});
