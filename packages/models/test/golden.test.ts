// Models against goldens from the project's PyTorch reference (scripts/golden/hf_mirror.py),
// itself cross-checked against transformers 5.17 (scripts/golden/crosscheck_transformers.py).
import * as T from "@balora/tensor";
import { describe, expect, it } from "vitest";
import { CausalLM, type LanguageModel, loadModel, SequenceClassifier } from "../src/index.js";
import { fixture, getGpu, maxAbsDiff, readGolden, relErr } from "./helpers.js";

function run(model: LanguageModel, g: Awaited<ReturnType<typeof readGolden>>, backend: T.Backend, withGrad: boolean) {
  const ids = g.get("input_ids");
  const [B, Tn] = ids.shape;
  const mask = g.get("attention_mask");
  const labels = g.get("labels");
  return T.tidy(() => {
    const idsT = T.tensor(Int32Array.from(ids.data), [B, Tn], { backend });
    const maskT = T.tensor(Int32Array.from(mask.data), [B, Tn], { backend });
    const logits = model.forward(idsT, { attentionMask: maskT });
    const labelsT = T.tensor(Int32Array.from(labels.data), labels.shape, { backend });
    const loss = model.loss(logits, labelsT);
    if (withGrad) T.backward(loss);
    return { logits, loss };
  });
}

/** Unpadded positions of [B, T, V] logits. */
const unpadded = (mask: Float64Array, V: number) => (i: number) => mask[Math.floor(i / V)] === 1;

const F32_CAUSAL = ["llama-f32", "mistral-f32-sharded", "gemma-f32", "gemma2-f32-sharded"];

describe("f32 checkpoints: logits, loss and every parameter gradient match HF", () => {
  for (const name of F32_CAUSAL) {
    it(name, async () => {
      const backend = await getGpu();
      const g = await readGolden(name);
      const model = await loadModel(fixture(name), { backend, trainable: true });
      expect(model).toBeInstanceOf(CausalLM);
      const { logits, loss } = run(model, g, backend, true);
      const want = g.get("logits");
      const V = want.shape[2];
      expect(maxAbsDiff(await logits.data(), want.data, unpadded(g.get("attention_mask").data, V))).toBeLessThan(1e-4);
      const l = await loss.item();
      expect(Math.abs(l - g.get("loss").data[0]) / g.get("loss").data[0]).toBeLessThan(1e-5);
      let checked = 0;
      for (const [pname, p] of model.namedParameters()) {
        if (!p.requiresGrad) continue;
        const gw = g.get(`grad.${pname}`);
        expect(p.grad, `grad of ${pname}`).toBeTruthy();
        expect(relErr(await p.grad!.data(), gw.data), `grad of ${pname}`).toBeLessThan(1e-3);
        checked++;
      }
      expect(checked).toBe(g.names.filter((n) => n.startsWith("grad.")).length);
      model.dispose();
    });
  }

  it("llama-seqcls-f32: pooled classifier logits, loss and gradients (score head included)", async () => {
    const backend = await getGpu();
    const g = await readGolden("llama-seqcls-f32");
    const model = await loadModel(fixture("llama-seqcls-f32"), { backend, trainable: true });
    expect(model).toBeInstanceOf(SequenceClassifier);
    const { logits, loss } = run(model, g, backend, true);
    expect(maxAbsDiff(await logits.data(), g.get("logits").data)).toBeLessThan(1e-4);
    expect(Math.abs((await loss.item()) - g.get("loss").data[0])).toBeLessThan(1e-5);
    for (const [pname, p] of model.namedParameters())
      expect(relErr(await p.grad!.data(), g.get(`grad.${pname}`).data), pname).toBeLessThan(1e-3);
    model.dispose();
  });
});

describe("bf16 checkpoints stay bf16 on the device", () => {
  for (const name of ["llama-bf16-sharded", "gemma-bf16"]) {
    it(`${name}: weights bf16, compute f32; matches HF's f32 compute of the same weights and its bf16 run`, async () => {
      const backend = await getGpu();
      const g = await readGolden(name);
      const V = g.get("logits").shape[2];
      const keep = unpadded(g.get("attention_mask").data, V);
      const model = await loadModel(fixture(name), { backend });
      const weights = [...model.namedParameters()];
      expect(weights.every(([, t]) => t.dtype === "bf16")).toBe(true);
      const { logits } = run(model, g, backend, false);
      const got = await logits.data();
      // HF computing in bf16 rounds every activation: within bf16 tolerance of it.
      const bf16 = g.get("logits").data;
      expect(maxAbsDiff(got, bf16, keep)).toBeLessThan(0.05 * Math.max(1, maxAbsDiff(bf16, new Float64Array(bf16.length))));
      if (name.startsWith("llama")) expect(maxAbsDiff(got, g.get("logits_f32").data, keep)).toBeLessThan(1e-4);
      model.dispose();
      // Upcast on load: exactly HF's f32 compute of the bf16 weights (Gemma's √H then stays f32 too).
      const up = await loadModel(fixture(name), { backend, dtype: "f32" });
      const { logits: l32, loss } = run(up, g, backend, false);
      expect(maxAbsDiff(await l32.data(), g.get("logits_f32").data, keep)).toBeLessThan(1e-4);
      expect(Math.abs((await loss.item()) - g.get("loss_f32").data[0])).toBeLessThan(1e-5 * g.get("loss_f32").data[0]);
      up.dispose();
    });
  }
});
