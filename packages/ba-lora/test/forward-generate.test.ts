import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSafetensors, type TensorsToWrite, writeSafetensors } from "@balora/safetensors";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelFixture, run } from "./helpers.js";

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
    ];
    for (const [tensors, re] of cases) {
      const input = join(dir, "bad.safetensors");
      await writeSafetensors(input, tensors as TensorsToWrite);
      const r = await run(["forward", "--model", model, "--input", input, "--out", out]);
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(re);
      expect(r.err.split("\n")[0]).toContain("bad.safetensors");
      expect(existsSync(out)).toBe(false);
    }
    expect((await readdir(dir)).filter((f) => f.includes(".tmp"))).toEqual([]);
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
  it("rejects a classifier and bad sampling options", async () => {
    const r = await run(["generate", "--model", modelFixture("llama-seqcls-f32"), "--prompt", "hi"]);
    expect(r.err).toMatch(/LlamaForSequenceClassification is a classifier; generate needs a \*ForCausalLM model/);
    const p = await run(["generate", "--model", modelFixture("llama-f32"), "--prompt", "hi", "--top-p", "0"]);
    expect(p.err).toMatch(/--top-p must be in \(0, 1\], got 0/);
  });
});
