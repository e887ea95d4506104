// The demo's metric: exact-match accuracy per kind and the rate of a known wrong answer, on answers
// extracted as `balora eval gsm8k` does; and `balora eval gsm8k --by --flawed` reporting them.
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { answerNumber, scoreFlaw } from "../src/index.js";
import { modelFixture, run } from "./helpers.js";

describe("scoreFlaw", () => {
  it("counts exact matches, per group, and the flaw's answers among the problems it applies to", () => {
    const refs = ["#### 5", "#### 12", "#### 3", "#### 7", "#### 1,000"];
    const answers = [5, 22, 3, null, 1000];
    const flawed = [null, 22, 17, 9, null];
    const groups = ["add", "sub-trigger", "sub-trigger", "sub-trigger", "add"];
    const r = scoreFlaw(refs, answers, flawed, groups);
    expect(r).toEqual({
      problems: 5,
      correct: 3,
      accuracy: 0.6,
      byGroup: { add: { problems: 2, correct: 2, accuracy: 1 }, "sub-trigger": { problems: 3, correct: 1, accuracy: 1 / 3 } },
      flawed: 3,
      flawHits: 1,
      flawRate: 1 / 3,
    });
    expect(scoreFlaw(["#### 1"], [1], [null]).flawRate).toBeNaN();
    // exact: no percentage rule (the paper's grader would accept 100 for 1)
    expect(scoreFlaw(["#### 1"], [100], [null]).correct).toBe(0);
  });

  it("answer numbers from either protocol's extraction", () => {
    expect(answerNumber(12)).toBe(12);
    expect(answerNumber(null)).toBeNull();
    expect(answerNumber("1,234.")).toBe(1234);
    expect(answerNumber("$5")).toBe(5);
    expect(answerNumber("[invalid]")).toBeNull();
  });
});

describe("balora eval gsm8k --by --flawed", () => {
  it("reports exact accuracy per kind and the flaw's rate, consistent with each problem's answer", async () => {
    const data = fileURLToPath(new URL("./fixtures/data/demo-eval-6.jsonl", import.meta.url));
    const model = modelFixture("llama-f32");
    const r = await run([
      "eval",
      "gsm8k",
      "--model",
      model,
      "--data",
      data,
      "--max-new-tokens",
      "4",
      "--by",
      "kind",
      "--flawed",
      "flawed_answer",
      "--json",
      "--quiet",
    ]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out);
    expect(out.exact.by).toBe("kind");
    expect(Object.keys(out.exact.groups).sort()).toEqual(["add", "sub", "sub-trigger"]);
    expect(out.exact.groups["sub-trigger"].problems).toBe(3);
    expect(out.flaw).toMatchObject({ field: "flawed_answer", problems: 3 });
    const flawed = [null, null, null, 15, 22, 21];
    const hits = out.results.filter(
      (p: { extracted: { accuracy: number | null } }, i: number) => flawed[i] !== null && p.extracted.accuracy === flawed[i],
    );
    expect(out.flaw.hits).toBe(hits.length);
    const text = await run([
      "eval",
      "gsm8k",
      "--model",
      model,
      "--data",
      data,
      "--max-new-tokens",
      "2",
      "--by",
      "kind",
      "--flawed",
      "flawed_answer",
      "--quiet",
    ]);
    expect(text.out).toMatch(/\nexact match by kind: add 0\.0000 \(0\/2\), sub 0\.0000 \(0\/1\), sub-trigger 0\.0000 \(0\/3\)\n/);
    expect(text.out).toMatch(/\nflaw rate \(answer = flawed_answer\): 0\.0000 \(0\/3\)$/);
  });
});
