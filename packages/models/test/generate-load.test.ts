import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@balora/tensor";
import { describe, expect, it } from "vitest";
import {
  type CausalLM,
  generate,
  loadModel,
  ModelConfigError,
  ModelWeightsError,
  sampleToken,
  saveModel,
  Tokenizer,
} from "../src/index.js";
import { fixture, getGpu, maxAbsDiff, readGolden } from "./helpers.js";

describe("generation", () => {
  for (const name of ["llama-f32", "gemma2-f32-sharded", "mistral-f32-sharded"]) {
    it(`${name}: with and without the KV cache gives identical tokens (greedy and sampled)`, async () => {
      const backend = await getGpu();
      const model = (await loadModel(fixture(name), { backend })) as CausalLM;
      const tok = await Tokenizer.fromDir(fixture(name));
      const prompt = tok.encode("Janet has 3 ducks");
      for (const opts of [{}, { temperature: 0.8, topP: 0.9, seed: 7 }]) {
        const cached = await generate(model, prompt, { maxNewTokens: 12, eosTokenIds: [], ...opts });
        const full = await generate(model, prompt, { maxNewTokens: 12, eosTokenIds: [], useCache: false, ...opts });
        expect(cached).toHaveLength(12);
        expect(cached).toEqual(full);
      }
      model.dispose();
    });
  }
  it("stops at EOS and leaks no GPU memory", async () => {
    const backend = await getGpu();
    const model = (await loadModel(fixture("llama-f32"), { backend })) as CausalLM;
    const before = backend.memory().bytesInUse;
    const first = await generate(model, [1, 5, 6], { maxNewTokens: 4, eosTokenIds: [] });
    const stopped = await generate(model, [1, 5, 6], { maxNewTokens: 4, eosTokenIds: [first[1]] });
    expect(stopped).toEqual(first.slice(0, 2));
    expect(backend.memory().bytesInUse).toBe(before);
    await expect(generate(model, [], {})).rejects.toThrow(/prompt is empty/);
    await expect(generate(model, [99999], {})).rejects.toThrow(/outside the vocabulary/);
    model.dispose();
  });
  it("top-p keeps the smallest set of likely tokens; seeds reproduce", () => {
    const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.2)];
    const seen = new Set<number>();
    const rng = new T.Rng(1);
    for (let i = 0; i < 200; i++) seen.add(sampleToken(logits, 1, 0.7, rng));
    expect([...seen].sort()).toEqual([0, 1]);
    expect(sampleToken([0, 5, 5], 0, 1, rng)).toBe(1);
    const a = Array.from({ length: 20 }, (_, i) => sampleToken(logits, 1, 1, new T.Rng(i)));
    const b = Array.from({ length: 20 }, (_, i) => sampleToken(logits, 1, 1, new T.Rng(i)));
    expect(a).toEqual(b);
  });
});

describe("loading errors and saving", () => {
  async function copyFixture(name: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), "balora-models-"));
    await cp(fixture(name), dir, { recursive: true });
    return dir;
  }
  it("unknown architecture lists the supported ones", async () => {
    const dir = await copyFixture("llama-f32");
    const cfg = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
    await writeFile(join(dir, "config.json"), JSON.stringify({ ...cfg, architectures: ["BertModel"] }));
    await expect(loadModel(dir, { backend: await getGpu() })).rejects.toThrow(ModelConfigError);
    await expect(loadModel(dir, { backend: await getGpu() })).rejects.toThrow(/"BertModel" is not supported; supported: LlamaForCausalLM/);
    await rm(dir, { recursive: true });
  });
  it("weights that do not fit the config: missing, unexpected and wrong shapes in one message", async () => {
    const dir = await copyFixture("llama-f32");
    const cfg = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
    await writeFile(join(dir, "config.json"), JSON.stringify({ ...cfg, num_hidden_layers: 3, intermediate_size: 48 }));
    const err = await loadModel(dir, { backend: await getGpu() }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ModelWeightsError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/missing model\.layers\.2\.self_attn\.q_proj\.weight/);
    expect(msg).toMatch(/model\.layers\.0\.mlp\.gate_proj\.weight has shape \[64,32\], the config needs \[48,32\]/);
    expect(msg.split("\n")).toHaveLength(1);
    await rm(dir, { recursive: true });
  });
  it("saveModel writes an HF directory that loads back to the same logits (bf16 stays bf16, tied head omitted)", async () => {
    const backend = await getGpu();
    const g = await readGolden("llama-bf16-sharded");
    const model = await loadModel(fixture("llama-bf16-sharded"), { backend });
    const dir = await mkdtemp(join(tmpdir(), "balora-save-"));
    await saveModel(model, dir, { maxShardSize: 40_000 });
    const index = JSON.parse(await readFile(join(dir, "model.safetensors.index.json"), "utf8"));
    expect(Object.keys(index.weight_map)).not.toContain("lm_head.weight");
    const again = await loadModel(dir, { backend });
    const ids = T.tensor(Int32Array.from(g.get("input_ids").data), g.get("input_ids").shape, { backend });
    const a = await T.noGrad(() => model.forward(ids)).data();
    const b = await T.noGrad(() => again.forward(ids)).data();
    expect(maxAbsDiff(a, b)).toBe(0);
    await rm(dir, { recursive: true });
  });
});
