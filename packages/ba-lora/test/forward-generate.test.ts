import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSafetensors, type TensorsToWrite, writeSafetensors } from "@balora/safetensors";
import { readConfig, Tokenizer } from "@balora/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bindingLimit, maxTokens } from "../src/cli/model.js";
import { modelFixture, onCpu, run, testBackend } from "./helpers.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "balora-cli-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function golden(name: string) {
  const f = await openSafetensors(join(modelFixture(name), "golden.safetensors"));
  const get = async (n: string) => f.readTensor(n);
  return { get, close: () => f.close() };
}

describe("balora forward", () => {
  it("writes logits F32 [B,T,V] that match the HF golden (I64 ids and mask in)", async () => {
    const g = await golden("mistral-f32-sharded");
    const ids = await g.get("input_ids");
    const mask = await g.get("attention_mask");
    const logits = await g.get("logits");
    await g.close();
    const input = join(dir, "in.safetensors");
    await writeSafetensors(input, { input_ids: ids, attention_mask: mask }, { metadata: { format: "pt" } });
    const out = join(dir, "out.safetensors");
    const r = await run(["forward", "--model", modelFixture("mistral-f32-sharded"), "--input", input, "--out", out]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const f = await openSafetensors(out);
    const got = await f.readTensor("logits");
    await f.close();
    expect(got.dtype).toBe("F32");
    expect(got.shape).toEqual(logits.shape);
    const [, Tn, V] = logits.shape;
    const m = mask.data as BigInt64Array;
    let worst = 0;
    for (let i = 0; i < got.data.length; i++) {
      if (m[Math.floor(i / V)] === 0n) continue;
      worst = Math.max(worst, Math.abs((got.data as Float32Array)[i] - (logits.data as Float32Array)[i]));
    }
    expect(worst).toBeLessThan(1e-4);
    expect(Tn).toBe(8);
  });

  it("bad inputs: one line naming the file and field, non-zero exit, no output file", async () => {
    const out = join(dir, "never.safetensors");
    const model = modelFixture("llama-f32");
    const cases: [
      Record<string, { dtype: "F32" | "I64" | "I32"; shape: number[]; data: Float32Array | BigInt64Array | Int32Array }>,
      RegExp,
    ][] = [
      [
        { tokens: { dtype: "I32", shape: [1, 2], data: new Int32Array([1, 2]) } },
        /no tensor "input_ids" \(expected I64 or I32 \[B, T\]\); found: tokens/,
      ],
      [{ input_ids: { dtype: "F32", shape: [1, 2], data: new Float32Array([1, 2]) } }, /"input_ids" has dtype F32, expected I64 or I32/],
      [{ input_ids: { dtype: "I32", shape: [2], data: new Int32Array([1, 2]) } }, /"input_ids" has shape \[2\], expected \[B, T\]/],
      [
        { input_ids: { dtype: "I64", shape: [1, 2], data: new BigInt64Array([1n, 9999n]) } },
        /input_ids\[0\]\[1\] = 9999 is outside the model's vocabulary \[0, 512\)/,
      ],
      [
        {
          input_ids: { dtype: "I32", shape: [1, 2], data: new Int32Array([1, 2]) },
          attention_mask: { dtype: "I32", shape: [1, 3], data: new Int32Array([1, 1, 1]) },
        },
        /"attention_mask" has shape \[1,3\], input_ids has \[1,2\]/,
      ],
      // 2^32 + 1 and 1 − 2^32 are 1 once narrowed to Int32: checked as I64 first
      [
        { input_ids: { dtype: "I64", shape: [1, 2], data: new BigInt64Array([1n, 4294967297n]) } },
        /input_ids\[0\]\[1\] = 4294967297 is outside the model's vocabulary \[0, 512\)/,
      ],
      [
        { input_ids: { dtype: "I64", shape: [2, 1], data: new BigInt64Array([2n, -4294967295n]) } },
        /input_ids\[1\]\[0\] = -4294967295 is outside the model's vocabulary/,
      ],
      [
        {
          input_ids: { dtype: "I64", shape: [1, 2], data: new BigInt64Array([1n, 2n]) },
          attention_mask: { dtype: "I64", shape: [1, 2], data: new BigInt64Array([1n, 4294967296n]) },
        },
        /attention_mask\[0\]\[1\] = 4294967296 must be 0 or 1/,
      ],
      [
        {
          input_ids: { dtype: "I32", shape: [2, 2], data: new Int32Array([1, 2, 3, 4]) },
          attention_mask: { dtype: "I32", shape: [2, 2], data: new Int32Array([1, 1, 0, 0]) },
        },
        /attention_mask row 1 is all 0 \(no token to attend to\)/,
      ],
    ];
    for (const [tensors, re] of cases) {
      const input = join(dir, "bad.safetensors");
      await writeSafetensors(input, tensors as TensorsToWrite);
      const r = await run(["forward", "--model", model, "--input", input, "--out", out]);
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(re);
      expect(r.err.split("\n")).toHaveLength(1);
      expect(r.err).toContain("bad.safetensors");
      expect(existsSync(out)).toBe(false);
    }
    expect((await readdir(dir)).filter((f) => f.includes(".tmp"))).toEqual([]);
  });

  it.skipIf(onCpu)("rows longer than the device holds are refused in tokens, before loading the weights", async () => {
    // (BALORA_BACKEND=cpu has no binding limit.) The estimate is exact on lavapipe: 2896 tokens run, 2897 do not.
    const model = modelFixture("llama-f32");
    const most = maxTokens(await readConfig(model), bindingLimit(await testBackend()), 2);
    const n = most.tokens + 1;
    const input = join(dir, "long.safetensors");
    await writeSafetensors(input, { input_ids: { dtype: "I32", shape: [2, n], data: new Int32Array(2 * n).fill(1) } });
    const r = await run(["forward", "--model", model, "--input", input, "--out", join(dir, "long-out.safetensors")]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `balora forward: --input ${input}: each row has ${n} tokens; this device fits at most ${most.tokens} for this model at batch 2 ` +
        `(${most.why}); split the batch or shorten the rows`,
    );
    expect(most.why).toMatch(/^the attention scores \[B, Hq=4, T, T\] in f32 must fit one \d+-byte storage binding$/);
  });

  it("paths: a directory as --input or --out, a missing --out directory: one line naming the user's path", async () => {
    const model = modelFixture("llama-f32");
    const input = join(model, "golden.safetensors");
    const asDir = await run(["forward", "--model", model, "--input", dir, "--out", join(dir, "x.safetensors")]);
    expect(asDir.err).toBe(`balora forward: --input ${dir} is a directory; --input takes a .safetensors file with input_ids`);
    const outDir = await run(["forward", "--model", model, "--input", input, "--out", dir]);
    expect(outDir.err).toBe(`balora forward: --out ${dir} is a directory; give a file path, e.g. ${join(dir, "logits.safetensors")}`);
    const missing = join(dir, "not-made-yet", "logits.safetensors");
    const noParent = await run(["forward", "--model", model, "--input", input, "--out", missing]);
    expect(noParent.err).toBe(
      `balora forward: --out ${missing}: the directory ${join(dir, "not-made-yet")} does not exist; ` +
        `create it first (mkdir -p ${join(dir, "not-made-yet")})`,
    );
    for (const r of [asDir, outDir, noParent]) expect(r.code).toBe(1);
  });
});

describe("balora generate", () => {
  it("prints a deterministic greedy continuation, the same with --no-cache", async () => {
    const model = modelFixture("llama-f32");
    const a = await run(["generate", "--model", model, "--prompt", "Janet has", "--max-new-tokens", "8"]);
    expect(a.err).toBe("");
    expect(a.code).toBe(0);
    expect(a.out.trim().length).toBeGreaterThan(0);
    const b = await run(["generate", "--model", model, "--prompt", "Janet has", "--max-new-tokens", "8", "--no-cache"]);
    expect(b.out).toBe(a.out);
    const s1 = await run([
      "generate",
      "--model",
      model,
      "--prompt",
      "Janet has",
      "--max-new-tokens",
      "8",
      "--temperature",
      "1",
      "--seed",
      "3",
    ]);
    const s2 = await run([
      "generate",
      "--model",
      model,
      "--prompt",
      "Janet has",
      "--max-new-tokens",
      "8",
      "--temperature",
      "1",
      "--seed",
      "3",
    ]);
    expect(s1.out).toBe(s2.out);
  });
  it("--max-new-tokens 0 prints an empty continuation and exits 0", async () => {
    const r = await run(["generate", "--model", modelFixture("llama-f32"), "--prompt", "Janet has", "--max-new-tokens", "0"]);
    expect(r).toEqual({ code: 0, out: "\n", err: "" });
  });

  it("past max_position_embeddings: one warning line on stderr, and the continuation", async () => {
    const model = modelFixture("llama-f32");
    const tok = await Tokenizer.fromDir(model);
    const prompt = "Janet has three ducks. ".repeat(60);
    const n = tok.encode(prompt).length;
    expect(n).toBeGreaterThan(256);
    const r = await run(["generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "2"]);
    expect(r.code).toBe(0);
    expect(r.err).toBe(
      `balora generate: warning: the prompt has ${n} tokens, more than the model's max_position_embeddings (256); ` +
        "later positions extrapolate RoPE as transformers does, and quality may degrade",
    );
    expect(r.out.endsWith("\n")).toBe(true);
  });

  it.skipIf(onCpu)("a prompt longer than the device holds is refused in tokens, before loading the weights", async () => {
    // (BALORA_BACKEND=cpu has no binding limit: nothing to refuse there.)
    const model = modelFixture("llama-f32");
    const most = maxTokens(await readConfig(model), bindingLimit(await testBackend()));
    expect(most.tokens).toBeGreaterThan(256);
    const tok = await Tokenizer.fromDir(model);
    let prompt = "Janet has three ducks. ";
    while (tok.encode(prompt).length <= most.tokens) prompt += prompt;
    const n = tok.encode(prompt).length;
    const r = await run(["generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "1"]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `balora generate: the prompt has ${n} tokens; this device fits at most ${most.tokens} for this model (${most.why}); shorten --prompt`,
    );
    expect(most.why).toMatch(/^the attention scores \[Hq=4, T, T\] in f32 must fit one \d+-byte storage binding$/);
  });

  it("rejects a classifier and bad sampling options", async () => {
    const r = await run(["generate", "--model", modelFixture("llama-seqcls-f32"), "--prompt", "hi"]);
    expect(r.err).toMatch(/LlamaForSequenceClassification is a classifier; generate needs a \*ForCausalLM model/);
    const p = await run(["generate", "--model", modelFixture("llama-f32"), "--prompt", "hi", "--top-p", "0"]);
    expect(p.err).toMatch(/--top-p must be in \(0, 1\], got 0/);
  });
});
