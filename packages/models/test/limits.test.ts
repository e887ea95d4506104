// generate past max_position_embeddings: it goes on (transformers extrapolates RoPE too) but says
// so once, through onWarning, before generating; within the limit it says nothing.
import * as T from "@balora/tensor";
import { describe, expect, it } from "vitest";
import { type CausalLM, generate, loadModel } from "../src/index.js";
import { positionWarning } from "../src/generate.js";
import { fixture } from "./helpers.js";

describe("generate and max_position_embeddings", () => {
  it("warns once when the prompt plus maxNewTokens may run past the limit, and still generates", async () => {
    const model = (await loadModel(fixture("llama-f32"), { backend: T.cpuBackend() })) as CausalLM;
    const limit = model.config.maxPositions;
    expect(limit).toBe(256);
    const warnings: string[] = [];
    const onWarning = (m: string) => warnings.push(m);
    const within = await generate(model, [1, 5, 6], { maxNewTokens: limit - 3, eosTokenIds: [], onWarning });
    expect(within).toHaveLength(limit - 3);
    expect(warnings).toEqual([]);
    const past = await generate(model, [1, 5, 6], { maxNewTokens: limit - 1, eosTokenIds: [], onWarning });
    expect(past).toHaveLength(limit - 1);
    expect(past.slice(0, limit - 3)).toEqual(within);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^generate: the prompt \(3 tokens\) plus up to 255 new tokens \(258\) exceed /);
    expect(warnings[0]).toMatch(/the model's max_position_embeddings \(256\); later positions extrapolate RoPE/);
    expect(warnings[0]).not.toContain("\n");
    model.dispose();
  });
  it("names a prompt that alone is past the limit", () => {
    expect(positionWarning(300, 0, 256)).toMatch(
      /^generate: the prompt has 300 tokens, more than the model's max_position_embeddings \(256\)/,
    );
    expect(positionWarning(256, 0, 256)).toBeNull();
  });
});
