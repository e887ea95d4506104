import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openSafetensors, writeSafetensors } from "@balora/safetensors";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelFixture, run } from "./helpers.js";

const peft = (name: string) => fileURLToPath(new URL(`./fixtures/peft/${name}`, import.meta.url));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "balora-cli-adapters-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `balora forward` on a golden's inputs and returns the worst |Δ| to `key` on unpadded positions. */
async function forwardDiff(model: string, goldenDir: string, key: string, adapter?: string): Promise<number> {
  const g = await openSafetensors(join(goldenDir, "golden.safetensors"));
  const ids = await g.readTensor("input_ids");
  const mask = await g.readTensor("attention_mask");
  const want = await g.readTensor(key);
  await g.close();
  const input = join(dir, `in-${Math.random()}.safetensors`);
  await writeSafetensors(input, { input_ids: ids, attention_mask: mask });
  const out = join(dir, `out-${Math.random()}.safetensors`);
  const r = await run(["forward", "--model", model, ...(adapter ? ["--adapter", adapter] : []), "--input", input, "--out", out]);
  expect(r.err).toBe("");
  const f = await openSafetensors(out);
  const got = (await f.readTensor("logits")).data as Float32Array;
  await f.close();
  const V = want.shape[2];
  const m = mask.data as BigInt64Array;
  let worst = 0;
  for (let i = 0; i < got.length; i++)
    if (m[Math.floor(i / V)] === 1n) worst = Math.max(worst, Math.abs(got[i] - (want.data as Float32Array)[i]));
  return worst;
}

describe("adapters on the command line", () => {
  it("forward --adapter: peft's adapter gives peft's logits", async () => {
    expect(await forwardDiff(modelFixture("gemma2-f32-sharded"), peft("gemma2-dora"), "logits", peft("gemma2-dora"))).toBeLessThan(1e-4);
  });

  it("merge: an HF directory whose logits are peft's merged logits, with the tokenizer files", async () => {
    const out = join(dir, "merged");
    const r = await run(["merge", "--model", modelFixture("llama-f32"), "--adapter", peft("llama-lora"), "--out", out]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect((await readdir(out)).sort()).toEqual([
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    expect(await forwardDiff(out, peft("llama-lora"), "logits_merged")).toBeLessThan(1e-4);
    const again = await run(["merge", "--model", modelFixture("llama-f32"), "--adapter", peft("llama-lora"), "--out", out]);
    expect(again.err).toMatch(/--out .*merged already exists; choose a new directory or remove it first/);
  });

  it("init pissa: residual model + pissa_init reproduce the base; the residual matches peft's", async () => {
    const out = join(dir, "pissa");
    const r = await run([
      "init",
      "--model",
      modelFixture("llama-f32"),
      "--init",
      "pissa",
      "--r",
      "4",
      "--alpha",
      "8",
      "--target",
      "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
      "--out",
      out,
    ]);
    expect(r.err).toBe("");
    expect(r.out).toMatch(/trainable params: [\d,]+ \|\| all params/);
    expect(existsSync(join(out, "pissa_init", "adapter_config.json"))).toBe(true);
    expect(existsSync(join(out, "tokenizer.json"))).toBe(true);
    // residual + initial adapter = the original model
    expect(await forwardDiff(out, modelFixture("llama-f32"), "logits", join(out, "pissa_init"))).toBeLessThan(1e-4);
    // the residual weights are peft's (the SVD is unique up to signs, which cancel in W − s·B·A)
    const ours = await openSafetensors(join(out, "model.safetensors"));
    const g = await openSafetensors(join(peft("llama-pissa"), "golden.safetensors"));
    let worst = 0;
    for (const name of g.names.filter((n) => n.startsWith("residual."))) {
      const a = (await ours.readTensor(name.slice("residual.".length))).data as Float32Array;
      const b = (await g.readTensor(name)).data as Float32Array;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    }
    await ours.close();
    await g.close();
    expect(worst).toBeLessThan(5e-5);
  });

  it("init lora: just the adapter; bad options and bad adapters are one clear line, no output left", async () => {
    const out = join(dir, "lora");
    const r = await run([
      "init",
      "--model",
      modelFixture("mistral-f32-sharded"),
      "--init",
      "lora",
      "--r",
      "2",
      "--alpha",
      "4",
      "--out",
      out,
    ]);
    expect(r.err).toBe("");
    expect((await readdir(out)).sort()).toEqual(["adapter_config.json", "adapter_model.safetensors"]);
    expect(await forwardDiff(modelFixture("mistral-f32-sharded"), modelFixture("mistral-f32-sharded"), "logits", out)).toBeLessThan(1e-4);

    const bad = await run([
      "init",
      "--model",
      modelFixture("llama-f32"),
      "--init",
      "olora",
      "--r",
      "2",
      "--alpha",
      "4",
      "--out",
      join(dir, "x"),
    ]);
    expect(bad.err.split("\n")[0]).toMatch(/--init must be pissa, pissa_niter_<N> or lora, got 'olora'/);
    const none = await run([
      "init",
      "--model",
      modelFixture("llama-f32"),
      "--init",
      "lora",
      "--r",
      "2",
      "--alpha",
      "4",
      "--target",
      "qkv",
      "--out",
      join(dir, "y"),
    ]);
    expect(none.err).toMatch(/match no Linear layer/);
    expect(existsSync(join(dir, "y"))).toBe(false);
    await mkdir(join(dir, "empty"));
    const noAdapter = await run(["merge", "--model", modelFixture("llama-f32"), "--adapter", join(dir, "empty"), "--out", join(dir, "z")]);
    expect(noAdapter.err).toMatch(/adapter_config\.json: not found/);
    const wrongBase = await run([
      "forward",
      "--model",
      modelFixture("gemma-f32"),
      "--adapter",
      peft("llama-lora"),
      "--input",
      "x",
      "--out",
      join(dir, "w"),
    ]);
    expect(wrongBase.code).not.toBe(0);
    expect(wrongBase.err).toMatch(/llama-lora: the adapter does not fit the model/);
    expect((await readdir(dir)).filter((f) => f.startsWith("."))).toEqual([]);
  });
});
