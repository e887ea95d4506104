// The data pipeline on real tokenizers: ids and labels equal to the BA-LoRA reference preprocessing
// (golden from transformers), truncation, padding, invalid rows with line numbers, batch order.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@balora/models";
import { describe, expect, it } from "vitest";
import {
  ALPACA_PROMPT,
  batchIndices,
  buildClassificationDataset,
  buildInstructionDataset,
  buildTextDataset,
  collateCausal,
  collateClassification,
  DataError,
  encodeInstruction,
  encodePrompt,
  epochPermutation,
  IGNORE_INDEX,
  instructionTexts,
  padTokenIdOf,
  parseRecords,
  stepPosition,
} from "../src/index.js";
import { modelFixture } from "./helpers.js";

const DEMO_MODEL = fileURLToPath(new URL("../assets/demo-model", import.meta.url));
const fixture = (name: string) => new URL(`./fixtures/data/${name}`, import.meta.url);
const rowsText = readFileSync(fixture("rows.jsonl"), "utf8");
const golden = JSON.parse(readFileSync(fixture("golden-tokenize.json"), "utf8")) as {
  tokenizers: Record<
    string,
    { cases: { ids: number[]; labels: number[] }[]; truncated: { max_length: number; ids: number[]; labels: number[] } }
  >;
};

describe("instruction data = the reference preprocess (transformers golden)", () => {
  const dirOf = (name: string) => (name === "demo" ? DEMO_MODEL : modelFixture(`tokenizers/${name}`));
  for (const name of ["llama2", "llama3", "gemma", "demo"]) {
    it(`${name}: ids and labels of every row, and a truncated row`, async () => {
      const tok = await Tokenizer.fromDir(dirOf(name));
      const ds = buildInstructionDataset(parseRecords(rowsText, "rows.jsonl"), tok);
      const g = golden.tokenizers[name];
      expect(ds.examples.map((e) => e.inputIds)).toEqual(g.cases.map((c) => c.ids));
      expect(ds.examples.map((e) => e.labels)).toEqual(g.cases.map((c) => c.labels));
      expect(ds.examples.map((e) => e.line)).toEqual([1, 2, 3, 4]);
      // BOS first, EOS last, the prompt masked
      for (const e of ds.examples) {
        expect(e.inputIds[0]).toBe(tok.bosTokenId);
        expect(e.inputIds.at(-1)).toBe(tok.eosTokenIds[0]);
        expect(e.labels[0]).toBe(IGNORE_INDEX);
        expect(e.labels.at(-1)).toBe(tok.eosTokenIds[0]);
      }
      const [first] = parseRecords(rowsText, "rows.jsonl");
      const row = first.value as { instruction: string; output: string };
      const cut = encodeInstruction(tok, ALPACA_PROMPT.replace("{instruction}", row.instruction), row.output, g.truncated.max_length);
      expect(cut.inputIds).toEqual(g.truncated.ids);
      expect(cut.labels).toEqual(g.truncated.labels);
      expect(cut.truncated).toBe(true);
      expect(cut.labels.filter((l) => l !== IGNORE_INDEX)).toHaveLength(3);
      expect(cut.inputIds.at(-1)).not.toBe(tok.eosTokenIds[0]);
    });
  }

  it("the exact Alpaca prompt text, custom fields and templates with {{ }} escapes", () => {
    const recs = parseRecords('{"query": "2+2?", "response": "4", "ctx": "math"}\n', "q.jsonl");
    const [a] = instructionTexts(recs, { fields: ["query", "response"] }).items;
    expect(a.prompt).toBe(
      "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
        "### Instruction:\n2+2?\n\n### Response:",
    );
    const [b] = instructionTexts(recs, { fields: ["query", "response"], template: "[{ctx}] {{literal}} Q: {query} A:" }).items;
    expect(b).toEqual({ line: 1, prompt: "[math] {literal} Q: 2+2? A:", response: "4" });
    expect(() => instructionTexts(recs, { fields: ["query", "response"], template: "Q: {ctx} A:" })).toThrow(
      /no \{instruction\} \(or \{query\}\)/,
    );
    expect(() => instructionTexts(recs, { template: "Q: {instruction A:" })).toThrow(/template: .*'\{' at character 4/);
  });

  it("a tokenizer that appends EOS (add_eos_token): one EOS, the boundary at the prompt's own length", () => {
    // characters as ids, BOS 1 and EOS 2 added around every encoding
    const tok = { bosTokenId: 1, eosTokenIds: [2], padTokenId: null, encode: (t: string) => [1, ...[...t].map((c) => c.charCodeAt(0)), 2] };
    const e = encodeInstruction(tok, "Q:", "ab", 16);
    expect(e.inputIds).toEqual([1, 81, 58, 97, 98, 2]);
    expect(e.labels).toEqual([IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 97, 98, 2]);
    expect(encodePrompt(tok, "Q:")).toEqual([1, 81, 58]);
  });

  it("prompt longer than maxLength: no target left, counted", async () => {
    const tok = await Tokenizer.fromDir(modelFixture("tokenizers/llama3"));
    const ds = buildInstructionDataset(parseRecords(rowsText, "rows.jsonl"), tok, { maxLength: 20 });
    expect(ds.truncated).toBe(4);
    expect(ds.withoutTargets).toBe(4);
    for (const e of ds.examples) {
      expect(e.inputIds).toHaveLength(20);
      expect(e.labels.every((l) => l === IGNORE_INDEX)).toBe(true);
    }
  });
});

describe("collation", () => {
  it("right padding, mask from lengths, -100 labels on padding, supervised count after the shift", async () => {
    const tok = await Tokenizer.fromDir(modelFixture("tokenizers/llama2"));
    const ds = buildInstructionDataset(parseRecords(rowsText, "rows.jsonl"), tok);
    const pad = padTokenIdOf(tok);
    expect(tok.padTokenId).toBeNull();
    expect(pad).toBe(tok.eosTokenIds[0]); // the reference sets pad = eos
    const batch = collateCausal(ds.examples.slice(0, 2), pad, { padToMultipleOf: 8 });
    const [a, b] = ds.examples;
    const T = Math.ceil(Math.max(a.inputIds.length, b.inputIds.length) / 8) * 8;
    expect(batch.seqLength).toBe(T);
    expect(batch.batchSize).toBe(2);
    for (const [row, e] of [a, b].entries()) {
      const ids = Array.from(batch.inputIds.subarray(row * T, (row + 1) * T));
      const mask = Array.from(batch.attentionMask.subarray(row * T, (row + 1) * T));
      const labels = Array.from(batch.labels.subarray(row * T, (row + 1) * T));
      const n = e.inputIds.length;
      expect(ids).toEqual([...e.inputIds, ...Array(T - n).fill(pad)]);
      // the EOS at the end of the target is attended although it equals the pad id
      expect(mask).toEqual([...Array(n).fill(1), ...Array(T - n).fill(0)]);
      expect(labels).toEqual([...e.labels, ...Array(T - n).fill(IGNORE_INDEX)]);
    }
    const expected = [a, b].reduce((s, e) => s + e.labels.filter((l) => l !== IGNORE_INDEX).length, 0);
    expect(batch.supervisedTokens).toBe(expected);
    expect(() => collateCausal([], pad)).toThrow(DataError);
  });
});

describe("invalid rows", () => {
  const bad = [
    '{"instruction": "ok", "output": "fine"}',
    "",
    '{"instruction": "no output"}',
    '{"instruction": 7, "output": "x"}',
    "[1, 2]",
    '{"instruction": "q", "output": "   "}',
    '{"instruction": "last", "output": "ok"}',
  ].join("\n");

  it("fail on the first with its line number and reason", () => {
    const recs = parseRecords(bad, "train.jsonl");
    expect(recs.map((r) => r.line)).toEqual([1, 3, 4, 5, 6, 7]);
    expect(() => instructionTexts(recs)).toThrow("train.jsonl:3: no field 'output' (fields: instruction) (--skip-invalid skips such rows)");
  });

  it("skipInvalid counts and skips them, each with its reason", () => {
    const { items, skipped } = instructionTexts(parseRecords(bad, "train.jsonl"), { skipInvalid: true });
    expect(items.map((i) => i.line)).toEqual([1, 7]);
    expect(skipped).toEqual([
      { line: 3, reason: "no field 'output' (fields: instruction)" },
      { line: 4, reason: "field 'instruction' is a number, expected a string" },
      { line: 5, reason: "the record is an array, expected a JSON object with the fields 'instruction' and 'output'" },
      { line: 6, reason: "field 'output' is empty; the response is what the model learns" },
    ]);
  });

  it("JSON syntax errors name the line; JSON arrays give each element's line", () => {
    expect(() => parseRecords('{"a": 1}\n{"a": \n', "x.jsonl")).toThrow(/^x\.jsonl:2: invalid JSON/);
    expect(() => parseRecords("  \n", "e.jsonl")).toThrow(/e\.jsonl: the file is empty/);
    expect(() => parseRecords("[{]", "a.json")).toThrow(/a\.json: invalid JSON array/);
    const arr = '[\n  {"instruction": "a", "output": "b"},\n\n  {"instruction": "[x]", "output": "{y}"}, {"q": "\\"]"},\n  7\n]';
    const recs = parseRecords(arr, "a.json");
    expect(recs.map((r) => r.line)).toEqual([2, 4, 4, 5]);
    expect(() => instructionTexts(recs)).toThrow(/^a\.json:4: no field 'instruction' \(fields: q\)/);
    expect(parseRecords("\ufeff[]", "b.json")).toEqual([]);
    expect(recs[0]).toEqual({ file: "a.json", line: 2, value: { instruction: "a", output: "b" } });
  });
});

describe("raw text and classification data", () => {
  it("text: every token after BOS is a target, no EOS added", async () => {
    const tok = await Tokenizer.fromDir(modelFixture("tokenizers/llama2"));
    const ds = buildTextDataset(parseRecords('{"text": "Hello world"}\n{"text": ""}', "t.jsonl"), tok, { skipInvalid: true });
    const ids = tok.encode("Hello world");
    expect(ds.examples[0].inputIds).toEqual(ids);
    expect(ds.examples[0].labels).toEqual([IGNORE_INDEX, ...ids.slice(1)]);
    expect(ds.skipped).toEqual([{ line: 2, reason: "field 'text' has 1 token(s); perplexity needs at least 2" }]);
  });

  it("classification: indices or names, range checks, padding needs a pad id", async () => {
    const tok = await Tokenizer.fromDir(modelFixture("llama-seqcls-f32"));
    const text = ['{"text": "good film", "label": 1}', '{"text": "bad", "label": "negative"}', '{"text": "x", "label": 3}'].join("\n");
    expect(() =>
      buildClassificationDataset(parseRecords(text, "c.jsonl"), tok, { numLabels: 2, labelNames: ["negative", "positive"] }),
    ).toThrow("c.jsonl:3: field 'label' is 3, expected a class index in [0, 2) or a class name (--skip-invalid skips such rows)");
    const ds = buildClassificationDataset(parseRecords(text, "c.jsonl"), tok, {
      numLabels: 2,
      labelNames: ["negative", "positive"],
      skipInvalid: true,
    });
    expect(ds.examples.map((e) => e.label)).toEqual([1, 0]);
    const batch = collateClassification(ds.examples, 0);
    expect(Array.from(batch.labels)).toEqual([1, 0]);
    const n0 = ds.examples[0].inputIds.length;
    const n1 = ds.examples[1].inputIds.length;
    expect(n0).toBeGreaterThan(n1);
    expect(Array.from(batch.attentionMask.subarray(batch.seqLength))).toEqual([...Array(n1).fill(1), ...Array(n0 - n1).fill(0)]);
    expect(() => collateClassification(ds.examples, null)).toThrow(/no pad_token_id/);
    const reg = buildClassificationDataset(parseRecords('{"text": "a", "label": 0.25}', "r.jsonl"), tok, { numLabels: 1 });
    expect(collateClassification(reg.examples, 0, { regression: true }).labels).toEqual(new Float32Array([0.25]));
  });
});

describe("batch order", () => {
  it("a pure function of (seed, epoch): same inputs same order, other epochs or seeds differ, every index once", () => {
    const a = epochPermutation(42, 0, 1000);
    expect(epochPermutation(42, 0, 1000)).toEqual(a);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    const b = epochPermutation(42, 1, 1000);
    const c = epochPermutation(43, 0, 1000);
    const same = (p: Int32Array, q: Int32Array) => p.filter((v, i) => v === q[i]).length;
    expect(same(a, b)).toBeLessThan(10);
    expect(same(a, c)).toBeLessThan(10);
    // a known value: changes only if the generator changes (which would break resuming old runs)
    expect(Array.from(epochPermutation(0, 0, 8))).toMatchInlineSnapshot(`
      [
        2,
        4,
        1,
        6,
        0,
        3,
        5,
        7,
      ]
    `);
  });

  it("batches cover the epoch; dropLast; a resumed step starts at the same batch", () => {
    const batches = batchIndices(7, 2, 10, 4);
    expect(batches.map((b) => b.length)).toEqual([4, 4, 2]);
    expect(batches.flat()).toEqual(Array.from(epochPermutation(7, 2, 10)));
    expect(batchIndices(7, 2, 10, 4, { dropLast: true })).toEqual(batches.slice(0, 2));
    // 10 examples, batch 4, accumulation 2: 3 batches → 2 optimizer steps per epoch
    expect(stepPosition(0, 10, 4, 2)).toEqual({ epoch: 0, batch: 0 });
    expect(stepPosition(1, 10, 4, 2)).toEqual({ epoch: 0, batch: 2 });
    expect(stepPosition(2, 10, 4, 2)).toEqual({ epoch: 1, batch: 0 });
    expect(() => batchIndices(1, 0, 10, 0)).toThrow(/batchSize must be an integer >= 1/);
  });
});
