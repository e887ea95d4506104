// Writes adapters with balora (trained for a few steps from fresh inits on the tiny fixture models)
// plus balora's logits, so scripts/golden/peft_roundtrip.sh can check them with real Python peft.
// Usage: node scripts/golden/balora_adapters.mjs OUT_DIR   (after `npm run build`)
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as L from "../../packages/lora/dist/index.js";
import { loadModel } from "../../packages/models/dist/index.js";
import { openSafetensors, writeSafetensors } from "../../packages/safetensors/dist/index.js";
import * as T from "../../packages/tensor/dist/index.js";

const out = process.argv[2];
const fixtures = new URL("../../packages/models/test/fixtures/", import.meta.url).pathname;
const ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
const cases = [
  { name: "llama-lora", base: "llama-f32", config: { r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj"] } },
  {
    name: "mistral-rslora-patterns",
    base: "mistral-f32-sharded",
    config: {
      r: 4,
      lora_alpha: 16,
      use_rslora: true,
      target_modules: "all-linear",
      rank_pattern: { o_proj: 2, "layers.1.mlp.down_proj": 6 },
      alpha_pattern: { k_proj: 3 },
    },
  },
  {
    name: "gemma-layers-exclude",
    base: "gemma-f32",
    config: { r: 4, lora_alpha: 8, target_modules: ["q_proj", "k_proj", "up_proj"], layers_to_transform: [1], exclude_modules: ["k_proj"] },
  },
  { name: "gemma2-dora", base: "gemma2-f32-sharded", config: { r: 4, lora_alpha: 4, use_dora: true, target_modules: ALL } },
  {
    name: "llama-pissa-converted",
    base: "llama-f32",
    config: { r: 4, lora_alpha: 8, target_modules: ALL, init_lora_weights: "pissa" },
    convert: true,
  },
];
const backend = await T.initWebGPU();
for (const c of cases) {
  const dir = join(out, c.name);
  await mkdir(dir, { recursive: true });
  const g = await openSafetensors(join(fixtures, c.base, "golden.safetensors"));
  const ids = await g.readTensor("input_ids");
  const mask = await g.readTensor("attention_mask");
  const labels = await g.readTensor("labels");
  await g.close();
  const t = (x) => T.tensor(Int32Array.from(x.data, Number), x.shape, { backend });
  const model = await loadModel(join(fixtures, c.base), { backend });
  L.injectAdapter(model, { ...c.config, init_lora_weights: c.config.init_lora_weights ?? false }, { seed: 7 });
  const opt = new T.AdamW(model.trainableParameters(), { lr: 0.02, weightDecay: 0 });
  for (let s = 0; s < 3; s++) {
    T.tidy(() => T.backward(model.loss(model.forward(t(ids), { attentionMask: t(mask) }), t(labels))));
    opt.step();
    opt.zeroGrad();
  }
  await L.saveAdapter(model, join(dir, "adapter"), { convertPissaToLora: !!c.convert, baseModelNameOrPath: c.base });
  // Logits the adapter must give on the ORIGINAL base (for the converted PiSSA: residual + trained = original + converted).
  const logits = await T.noGrad(() => model.forward(t(ids), { attentionMask: t(mask) })).data();
  await writeSafetensors(join(dir, "logits.safetensors"), {
    logits: { dtype: "F32", shape: [...ids.shape, logits.length / (ids.shape[0] * ids.shape[1])], data: Float32Array.from(logits) },
  });
  await writeSafetensors(join(dir, "inputs.safetensors"), { input_ids: ids, attention_mask: mask });
  await writeFile(join(dir, "base.txt"), join(fixtures, c.base));
  model.dispose();
}
await T.releaseWebGPU();
console.log(`wrote ${cases.length} adapters to ${out}`);
