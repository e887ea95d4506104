// GSM8K answer extraction under both protocols on known completions, stop strings, and `balora eval`
// end to end (gsm8k on five real problems, perplexity checked against the model's own loss).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type CausalLM, loadModel, Tokenizer } from "@balora/models";
import * as T from "@balora/tensor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildInstructionDataset,
  collateCausal,
  complete,
  extractFlexible,
  extractPaperAnswer,
  extractStrict,
  harnessCorrect,
  harnessPrompt,
  paperCorrect,
  paperGold,
  paperPrompt,
  parseRecords,
  roundHalfEven,
  scoreGsm8k,
} from "../src/index.js";
import { modelFixture, run, testBackend } from "./helpers.js";

const GSM8K = fileURLToPath(new URL("./fixtures/data/gsm8k-5.jsonl", import.meta.url));
const LLAMA = modelFixture("llama-f32");

describe("paper protocol (BA-LoRA/MetaMath) extraction", () => {
  it.each([
    ["So she makes 9 * 2 = 18 dollars.\nThe answer is: 18", 18],
    ["The answer is: 1,234,567 apples", 1234], // the reference's pattern takes one separator: "1,234"
    ["The answer is: 1,234.", 1234],
    ["The answer is: $70,000", 70000],
    ["The answer is: -5.", -5],
    ["The answer is: +3", 3],
    ["The answer is: 3/4", 1], // round(0.75)
    ["The answer is: 1/2", 0], // Python round: half to even
    ["The answer is: 5/0", 5], // the reference's zero-denominator rule
    ["The answer is: 2.5", 2],
    ["The answer is: 3.5", 4],
    ["The answer is: 7\n\nThe answer is: 8", 8], // the last one
    ["the answer is: 7", null], // case matters
    ["The answer is:7", null], // the space matters
    ["The answer is: unknown", null],
    ["no answer at all 42", null],
    ["", null],
  ])("%j → %s", (completion, expected) => {
    expect(extractPaperAnswer(completion)).toBe(expected);
  });

  it("gold answers and the grader's comparison (including its percentage rule)", () => {
    expect(paperGold("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18")).toBe(18);
    expect(paperGold("#### 1,000")).toBe(1000);
    expect(paperGold("no final answer")).toBeNull();
    expect(paperCorrect(18, 18)).toBe(true);
    expect(paperCorrect(17, 18)).toBe(false);
    expect(paperCorrect(null, 18)).toBe(false);
    expect(paperCorrect(1800, 18)).toBe(true); // math_equal accepts gold × 100
    expect(paperCorrect(0, 0)).toBe(true);
    expect(roundHalfEven(-2.5)).toBe(-2);
    expect(roundHalfEven(-3.5)).toBe(-4);
  });

  it("the prompt is the Alpaca prompt + Let's think step by step.", () => {
    expect(paperPrompt("What is $1 + 1?")).toBe(
      "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
        "### Instruction:\nWhat is $1 + 1?\n\n### Response: Let's think step by step.",
    );
  });
});

describe("harness protocol (lm-evaluation-harness gsm8k) extraction", () => {
  it.each([
    ["Janet sells 9 eggs.\n#### 18", "18", "18"],
    ["#### 1,234.\nQuestion", "1,234.", "1,234."],
    ["#### -5", "-5", "-5"],
    ["She pays $12.50 for 3 items", "[invalid]", "3"], // the last number
    ["3 items cost $12.50", "[invalid]", "$12.50"],
    ["It is 7. Then 8", "[invalid]", "8"],
    ["Result: -3", "[invalid]", "-3"],
    ["Nothing here.", "[invalid]", "[invalid]"],
    ["Wait... so it is", "[invalid]", "..."], // the harness's flexible pattern also matches runs of dots
  ])("%j → strict %s, flexible %s", (completion, strict, flexible) => {
    expect(extractStrict(completion)).toBe(strict);
    expect(extractFlexible(completion)).toBe(flexible);
  });

  it("exact match after the harness's normalisation", () => {
    const ref = "She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 1,800";
    expect(harnessCorrect("1,800.", ref)).toBe(true);
    expect(harnessCorrect("$1800", ref)).toBe(true);
    expect(harnessCorrect("1800.0", ref)).toBe(false); // string match, not numeric
    expect(harnessCorrect("[invalid]", ref)).toBe(false);
    const s = scoreGsm8k("harness", "So 9 * 2 = 18. #### 18", "#### 18");
    expect(s).toEqual({
      extracted: { "strict-match": "18", "flexible-extract": "18" },
      correct: { "strict-match": true, "flexible-extract": true },
    });
    expect(scoreGsm8k("harness", "It is 18, not 20", "#### 18").correct).toEqual({ "strict-match": false, "flexible-extract": false });
    expect(scoreGsm8k("paper", "The answer is: 18", "... #### 18")).toEqual({ extracted: { accuracy: 18 }, correct: { accuracy: true } });
    const shot = { line: 1, question: "1+1?", answer: "1+1=2\n#### 2" };
    expect(harnessPrompt("2+2?", [shot, shot])).toBe(
      "Question: 1+1?\nAnswer: 1+1=2\n#### 2\n\nQuestion: 1+1?\nAnswer: 1+1=2\n#### 2\n\nQuestion: 2+2?\nAnswer:",
    );
  });
});

describe("generation with stop strings", () => {
  it("stops at the first stop string and cuts the text before it", async () => {
    const backend = await testBackend();
    const model = (await loadModel(LLAMA, { backend })) as CausalLM;
    const tok = await Tokenizer.fromDir(LLAMA);
    const free = await complete(model, tok, "Janet has", { maxNewTokens: 12 });
    expect(free.stoppedBy).toBe("length");
    expect(free.tokens).toBe(12);
    // a stop string that the free run produces in its middle
    const stop = free.text.slice(Math.floor(free.text.length / 2), Math.floor(free.text.length / 2) + 2);
    expect(stop.trim()).not.toBe("");
    const cut = await complete(model, tok, "Janet has", { maxNewTokens: 12, stop: ["never-produced", stop] });
    expect(cut.stoppedBy).toBe("stop");
    expect(cut.tokens).toBeLessThan(12);
    expect(cut.text).toBe(free.text.slice(0, free.text.indexOf(stop)));
  });
});

describe("balora eval", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "balora-eval-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("gsm8k --json on five GSM8K problems: every problem's completion, extracted answer and score", async () => {
    for (const mode of ["paper", "harness"] as const) {
      const r = await run([
        "eval",
        "gsm8k",
        "--model",
        LLAMA,
        "--data",
        GSM8K,
        "--limit",
        "5",
        "--mode",
        mode,
        "--max-new-tokens",
        "6",
        "--json",
        "--quiet",
      ]);
      // problem 3's prompt is longer than this fixture's max_position_embeddings: one warning, then on
      const warnings = r.err.split("\n");
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(
        /^balora eval: warning: the prompt (has \d+ tokens, more than|\(\d+ tokens\) plus up to 6 new tokens).* \(256\)/,
      );
      expect(r.code).toBe(0);
      const out = JSON.parse(r.out);
      expect(out.problems).toBe(5);
      expect(out.results.map((p: { gold: string }) => p.gold)).toEqual(["18", "3", "70000", "540", "20"]);
      for (const p of out.results) {
        const again = scoreGsm8k(mode, p.completion, `#### ${p.gold}`);
        expect(p.extracted).toEqual(again.extracted);
        expect(p.correct).toEqual(again.correct);
        expect(p.tokens).toBeGreaterThan(0);
        expect(p.tokens).toBeLessThanOrEqual(6);
      }
      const metrics = mode === "paper" ? ["accuracy"] : ["strict-match", "flexible-extract"];
      expect(Object.keys(out.metrics)).toEqual(metrics);
      for (const m of metrics)
        expect(out.metrics[m]).toBe(out.results.filter((p: { correct: Record<string, boolean> }) => p.correct[m]).length / 5);
    }
  });

  it("gsm8k summary line and progress; usage and data mistakes are one line", async () => {
    const r = await run(["eval", "gsm8k", "--model", LLAMA, "--data", GSM8K, "--limit", "2", "--max-new-tokens", "2"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^gsm8k paper: accuracy 0\.0000 \(0\/2\) in \d+\.\d s\n?$/);
    expect(r.err).toMatch(/^gsm8k 1\/2 \(line 1\): gold 18, /);
    const bad = join(dir, "bad.jsonl");
    await writeFile(bad, '{"question": "q", "answer": "#### 1"}\n{"question": "q2", "answer": "no final"}\n');
    const e = await run(["eval", "gsm8k", "--model", LLAMA, "--data", bad]);
    expect(e.code).toBe(1);
    expect(e.err).toBe(
      `balora eval: ${bad}:2: field 'answer' has no final answer: expected '#### N' with a number N (--skip-invalid skips such rows)`,
    );
    expect((await run(["eval", "gsm8k", "--model", LLAMA, "--data", GSM8K, "--mode", "vibes"])).code).toBe(2);
    expect((await run(["eval", "perplexity", "--model", LLAMA, "--data", GSM8K, "--mode", "paper"])).err).toMatch(
      /Unknown option '--mode'/,
    );
    const none = await run(["eval", "--model", LLAMA]);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/name the evaluation first: balora eval gsm8k\|perplexity/);
    const help = await run(["eval", "--help"]);
    expect(help.out).toMatch(/--mode paper\|harness +the protocol \(see above\) \(default: paper\)/);
  });

  it("perplexity on instruction targets equals exp(the model's own loss); raw text scores every token", async () => {
    const data = join(dir, "ppl.jsonl");
    const rows = [
      { instruction: "What is 2 + 3?", output: "2 + 3 = 5. The answer is: 5", text: "Janet has three ducks and two hens." },
      { instruction: "Name a colour.", output: "Blue.", text: "The sky is blue." },
      { instruction: "Count to three.", output: "One, two, three.", text: "One two three." },
    ];
    await writeFile(data, rows.map((r) => JSON.stringify(r)).join("\n"));
    const r = await run(["eval", "perplexity", "--model", LLAMA, "--data", data, "--batch-size", "2", "--json", "--quiet"]);
    expect(r.err).toBe("");
    const out = JSON.parse(r.out);
    // reference: the model's HF-style loss on the whole batch (mean over supervised tokens)
    const backend = await testBackend();
    const model = (await loadModel(LLAMA, { backend })) as CausalLM;
    const tok = await Tokenizer.fromDir(LLAMA);
    const ds = buildInstructionDataset(parseRecords(rows.map((x) => JSON.stringify(x)).join("\n"), "ppl.jsonl"), tok);
    const batch = collateCausal(ds.examples, tok.eosTokenIds[0]);
    const shape = [batch.batchSize, batch.seqLength];
    const loss = T.noGrad(() =>
      model.loss(
        model.forward(T.tensor(batch.inputIds, shape, { backend }), { attentionMask: T.tensor(batch.attentionMask, shape, { backend }) }),
        T.tensor(batch.labels, shape, { backend }),
      ),
    );
    const ref = await loss.item();
    expect(out.tokens).toBe(batch.supervisedTokens);
    expect(out.loss).toBeCloseTo(ref, 4);
    expect(out.perplexity).toBeCloseTo(Math.exp(ref), 3);
    expect(out.scored).toBe("targets");
    const text = JSON.parse(
      (await run(["eval", "perplexity", "--model", LLAMA, "--data", data, "--text-field", "text", "--json", "--quiet"])).out,
    );
    expect(text.scored).toBe("text");
    expect(text.tokens).toBe(rows.reduce((s, x) => s + tok.encode(x.text).length - 1, 0));
    expect(text.perplexity).toBeGreaterThan(1);
  });
});
