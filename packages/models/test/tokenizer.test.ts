// Tokenizers against ids from the Rust `tokenizers` library reading the same tokenizer.json
// (scripts/golden/tokenizers_golden.py), for LLaMA-2, LLaMA-3 and Gemma style pipelines.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Tokenizer, TokenizerError } from "../src/index.js";
import { fixture } from "./helpers.js";

interface Case {
  text: string;
  ids: number[];
  ids_no_special: number[];
  decode: string;
  decode_skip_special: string;
}
const golden = JSON.parse(readFileSync(`${fixture("tokenizers")}/golden.json`, "utf8")) as {
  families: Record<string, { cases: Case[]; special_ids: Record<string, number> }>;
};

describe("tokenizer.json through @huggingface/tokenizers", () => {
  for (const family of ["llama2", "llama3", "gemma"]) {
    it(`${family}: ids, ids without special tokens, decode`, async () => {
      const tok = await Tokenizer.fromDir(`${fixture("tokenizers")}/${family}`);
      const fam = golden.families[family];
      expect(tok.bosTokenId).toBe(fam.special_ids.bos_token);
      for (const c of fam.cases) {
        expect(tok.encode(c.text), JSON.stringify(c.text)).toEqual(c.ids);
        expect(tok.encode(c.text, { addSpecialTokens: false }), JSON.stringify(c.text)).toEqual(c.ids_no_special);
        expect(tok.decode(c.ids), JSON.stringify(c.text)).toBe(c.decode);
        expect(tok.decode(c.ids, { skipSpecialTokens: true }), JSON.stringify(c.text)).toBe(c.decode_skip_special);
      }
    });
  }
  it("reads stop tokens from generation_config.json (a list for LLaMA-3 style)", async () => {
    const tok = await Tokenizer.fromDir(fixture("llama-bf16-sharded"));
    expect(tok.eosTokenIds).toEqual([401, 404]);
  });
  it("a directory without tokenizer.json is one clear error", async () => {
    await expect(Tokenizer.fromDir("/nonexistent")).rejects.toThrow(TokenizerError);
    await expect(Tokenizer.fromDir("/nonexistent")).rejects.toThrow(/tokenizer\.json: not found/);
  });
});
