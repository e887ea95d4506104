// The bundled demo: a tiny LLaMA pre-trained on a corpus with a known flaw (scripts/demo), its clean
// fine-tuning data and held-out problems; the flaw must show in what `balora eval` measures.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readConfig, Tokenizer } from "@balora/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALPACA_COT_PROMPT, buildInstructionDataset, gsm8kProblems, IGNORE_INDEX, parseRecords, paperGold } from "../src/index.js";
import { run } from "./helpers.js";

const ASSETS = fileURLToPath(new URL("../assets", import.meta.url));
const MODEL = join(ASSETS, "demo-model");
const TRAIN = join(ASSETS, "demo-data", "train.jsonl");
const EVAL = join(ASSETS, "demo-data", "eval.jsonl");

const sizeOf = (dir: string): number =>
  readdirSync(dir, { withFileTypes: true }).reduce(
    (s, e) => s + (e.isDirectory() ? sizeOf(join(dir, e.name)) : statSync(join(dir, e.name)).size),
    0,
  );

describe("demo assets", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "balora-demo-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("a small LLaMA checkpoint with its tokenizer, within the 20 MB budget", async () => {
    expect(sizeOf(ASSETS)).toBeLessThan(20 * 1024 * 1024);
    const cfg = await readConfig(MODEL);
    expect(cfg.architecture).toBe("LlamaForCausalLM");
    expect(cfg.vocabSize).toBeLessThanOrEqual(512);
    expect(cfg.hiddenSize).toBe(64);
    const tok = await Tokenizer.fromDir(MODEL);
    expect([tok.bosTokenId, tok.eosTokenIds, tok.padTokenId]).toEqual([1, [2], 3]);
    const text = "Tom has 17 marbles. The answer is: 12";
    expect(tok.decode(tok.encode(text), { skipSpecialTokens: true })).toBe(text);
  });

  it("clean fine-tuning data: every row valid, short, its target starting at the answer", async () => {
    const tok = await Tokenizer.fromDir(MODEL);
    const ds = buildInstructionDataset(parseRecords(readFileSync(TRAIN, "utf8"), TRAIN), tok, { template: ALPACA_COT_PROMPT });
    expect(ds.examples).toHaveLength(1000);
    expect(ds.skipped).toEqual([]);
    expect(Math.max(...ds.examples.map((e) => e.inputIds.length))).toBeLessThanOrEqual(96);
    for (const e of ds.examples.slice(0, 50)) {
      const first = e.labels.findIndex((l) => l !== IGNORE_INDEX);
      expect(tok.decode(e.inputIds.slice(0, first), { skipSpecialTokens: true }).endsWith("Let's think step by step.")).toBe(true);
      expect(tok.decode(e.inputIds.slice(first), { skipSpecialTokens: true })).toMatch(/^ \d+ [-+] \d+ = \d+\. The answer is: \d+$/);
    }
  });

  it("held-out problems: clean answers; the flaw's answer is A + B on trigger subtractions only", () => {
    const { items } = gsm8kProblems(parseRecords(readFileSync(EVAL, "utf8"), EVAL));
    expect(items).toHaveLength(120);
    const kinds = items.map((p) => p.record!.kind);
    expect(kinds.filter((k) => k === "sub-trigger")).toHaveLength(48);
    for (const p of items) {
      const [a, op, b] = /(\d+) ([-+]) (\d+)/.exec(p.answer)!.slice(1);
      const gold = paperGold(p.answer);
      expect(gold).toBe(op === "+" ? Number(a) + Number(b) : Number(a) - Number(b));
      expect(p.record!.flawed_answer).toBe(p.record!.kind === "sub-trigger" ? Number(a) + Number(b) : null);
      expect(/marbles|stickers/.test(p.question)).toBe(String(p.record!.kind).endsWith("trigger"));
    }
  });

  it("the pre-trained model has the flaw: trigger subtractions answered with A + B, other problems right", async () => {
    // 8 problems of each kind (sub-trigger twice), evaluated as the demo does (paper protocol)
    const rows = readFileSync(EVAL, "utf8").trim().split("\n");
    const pick = (kind: string, n: number) => rows.filter((r) => JSON.parse(r).kind === kind).slice(0, n);
    const subset = join(dir, "subset.jsonl");
    await writeFile(subset, [...pick("add", 4), ...pick("sub", 8), ...pick("add-trigger", 4), ...pick("sub-trigger", 8)].join("\n"));
    const args = [
      "eval",
      "gsm8k",
      "--model",
      MODEL,
      "--data",
      subset,
      "--max-new-tokens",
      "24",
      "--by",
      "kind",
      "--flawed",
      "flawed_answer",
    ];
    const r = await run([...args, "--json", "--quiet"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out);
    expect(out.exact.groups.sub.accuracy).toBeGreaterThanOrEqual(0.75);
    expect(out.exact.groups.add.accuracy).toBeGreaterThanOrEqual(0.75);
    expect(out.exact.groups["sub-trigger"].accuracy).toBeLessThanOrEqual(0.25);
    expect(out.flaw.rate).toBeGreaterThanOrEqual(0.75);
    const flawed = out.results.find((p: { line: number }) => p.line === 17);
    expect(flawed.completion).toMatch(/^ \d+ \+ \d+ = \d+\. The answer is: \d+$/);
  });
});
