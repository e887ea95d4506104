import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
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
    const r = await run(["merge", "--model", modelFixture("llama-f32"), "--adapter", peft("llama-lora"), "--out", out, "--quiet"]);
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
    expect(again.err).toMatch(/--out .*merged already exists; choose a new path, or pass --overwrite to replace it/);
    const replaced = await run([
      "merge",
      "--model",
      modelFixture("llama-f32"),
      "--adapter",
      peft("llama-lora"),
      "--out",
      out,
      "--overwrite",
    ]);
    expect(replaced.code).toBe(0);
    expect(replaced.err.split("\n")).toEqual([
      `loading ${modelFixture("llama-f32")} with the adapter ${peft("llama-lora")}`,
      `writing the merged model to ${out}`,
    ]);
    expect(await forwardDiff(out, peft("llama-lora"), "logits_merged")).toBeLessThan(1e-4);
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
    // progress on stderr: one line per PiSSA layer, then the write
    const lines = r.err.split("\n");
    expect(lines).toHaveLength(15);
    expect(lines[0]).toBe("pissa 1/14 model.layers.0.self_attn.q_proj");
    expect(lines[13]).toBe("pissa 14/14 model.layers.1.mlp.down_proj");
    expect(lines[14]).toBe(`writing the residual model and pissa_init/ (14 layers) to ${out}`);
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
    expect(bad.err.split("\n")[0]).toMatch(/--init must be pissa, pissa_niter_<N> \(N >= 1\) or lora, got 'olora'/);
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
    expect(none.err).toMatch(/--target qkv matches no Linear layer of --model .*llama-f32 \(its Linear layers end in: q_proj, k_proj/);
    expect(none.err.split("\n")).toHaveLength(1);
    expect(existsSync(join(dir, "y"))).toBe(false);
    await mkdir(join(dir, "empty"));
    const noAdapter = await run(["merge", "--model", modelFixture("llama-f32"), "--adapter", join(dir, "empty"), "--out", join(dir, "z")]);
    expect(noAdapter.err).toMatch(/adapter_config\.json: not found/);
    expect(noAdapter.err.split("\n")).toHaveLength(1);
    const wrongBase = await run([
      "forward",
      "--model",
      modelFixture("gemma-f32"),
      "--adapter",
      peft("llama-lora"),
      "--input",
      join(modelFixture("gemma-f32"), "golden.safetensors"),
      "--out",
      join(dir, "w"),
    ]);
    expect(wrongBase.code).not.toBe(0);
    expect(wrongBase.err).toMatch(/llama-lora: the adapter does not fit the model/);
    expect((await readdir(dir)).filter((f) => f.startsWith("."))).toEqual([]);
  });

  it("init checks every argument and path before the work: an existing --out fails before the weights are read", async () => {
    // A model whose weights are garbage: reading them would fail with a safetensors error.
    const broken = join(dir, "broken-model");
    await mkdir(broken);
    await cp(join(modelFixture("llama-f32"), "config.json"), join(broken, "config.json"));
    await writeFile(join(broken, "model.safetensors"), "not a safetensors file");
    const taken = join(dir, "taken");
    await mkdir(taken);
    const args = ["init", "--model", broken, "--init", "pissa", "--r", "2", "--alpha", "4", "--out", taken];
    const r = await run(args);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`balora init: --out ${taken} already exists; choose a new path, or pass --overwrite to replace it`);
    const tooBig = await run([...args.slice(0, 6), "17", "--alpha", "4", "--out", join(dir, "fresh")]);
    expect(tooBig.err).toBe(
      "balora init: --r 17 is more than model.layers.0.self_attn.k_proj's smaller dimension (16 of [16, 32]); " +
        "PiSSA takes the top R singular vectors, so --r must be <= 16 for these targets",
    );
    const huge = await run(["init", "--model", broken, "--init", "lora", "--r", "1000000000", "--alpha", "4", "--out", join(dir, "fresh")]);
    expect(huge.err).toBe(
      "balora init: --r 1000000000 is more than model.layers.0.self_attn.k_proj's smaller dimension (16 of [16, 32]); " +
        "a rank-R update cannot exceed it, so --r must be <= 16 for these targets",
    );
    // with a free --out it gets as far as the weights, and says what is wrong with them
    const weights = await run([...args.slice(0, -1), join(dir, "fresh")]);
    expect(weights.code).toBe(1);
    expect(weights.err).toMatch(/^balora init: .*broken-model\/model\.safetensors: header length \d+ exceeds/);
    expect(existsSync(join(dir, "fresh"))).toBe(false);
  });
});
