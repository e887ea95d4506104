// Weights larger than one storage binding, as Gemma's 256k vocabulary is: a generated LLaMA with a
// 256000 × 136 f32 embedding (139 MB > lavapipe's 128 MiB binding) loads, runs forward and a LoRA step.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as L from "@balora/lora";
import { saveCheckpoint, type TensorToWrite } from "@balora/safetensors";
import * as T from "@balora/tensor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CausalLM, expectedWeights, loadModel, parseConfig } from "../src/index.js";
import { cpuOnly, getGpu } from "./helpers.js";

const V = 256000;
const H = 136;
const config = {
  architectures: ["LlamaForCausalLM"],
  vocab_size: V,
  hidden_size: H,
  intermediate_size: 64,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 68,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 64,
  tie_word_embeddings: true,
  bos_token_id: 1,
  eos_token_id: 2,
};

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "balora-256k-"));
  const rng = new T.Rng(1);
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, shape] of expectedWeights(parseConfig(config))) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const scale = name.endsWith("norm.weight") ? 0 : 0.05;
    for (let i = 0; i < n; i++) data[i] = name.endsWith("norm.weight") ? 1 : (2 * rng.next() - 1) * scale;
    tensors[name] = { dtype: "F32", shape, data };
  }
  await saveCheckpoint(dir, tensors, { maxShardSize: "2GB" });
  await writeFile(join(dir, "config.json"), JSON.stringify(config));
}, 120_000);
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(cpuOnly)("a 256000-row vocabulary larger than one storage binding (needs WebGPU)", () => {
  it("loads, runs forward, and gives the float64 oracle's logits; a LoRA step trains", async () => {
    const gpu = (await getGpu()) as T.WebGPUBackend;
    const embeddingBytes = V * H * 4;
    expect(embeddingBytes).toBeGreaterThan(gpu.limits.maxStorageBufferBindingSize);
    const ids = [1, 255999, 7, 128000, 42, 3];
    const logitsOf = async (model: CausalLM, b: T.Backend) =>
      T.noGrad(() => T.tidy(() => model.forward(T.tensor(Int32Array.from(ids), [1, ids.length], { backend: b })))).data();

    const model = (await loadModel(dir, { backend: gpu })) as CausalLM;
    const got = await logitsOf(model, gpu);
    expect(got.length).toBe(ids.length * V);
    const oracle = (await loadModel(dir, { backend: T.cpuBackend() })) as CausalLM;
    const want = await logitsOf(oracle, T.cpuBackend());
    oracle.dispose();
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    expect(worst).toBeLessThan(1e-4);

    // A LoRA step: the head's backward (dX = G·E over the 256k rows) runs in windows too.
    L.injectAdapter(model, { target_modules: ["q_proj", "v_proj"], r: 4, lora_alpha: 8, init_lora_weights: false }, { seed: 2 });
    const opt = new T.AdamW(model.namedTrainableParameters(), { lr: 0.05, weightDecay: 0 });
    const input = T.tensor(Int32Array.from(ids), [1, ids.length], { backend: gpu });
    const losses: number[] = [];
    for (let step = 0; step < 3; step++) {
      const loss = T.tidy(() => model.loss(model.forward(input), input));
      losses.push(await loss.item());
      T.backward(loss);
      loss.dispose();
      opt.step();
      opt.zeroGrad();
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[2]).toBeLessThan(losses[0]);
    input.dispose();
    opt.dispose();
    model.dispose();
  }, 300_000);
});
