// Tokenizers from a model directory (tokenizer.json through @huggingface/tokenizers; a path, URL, Files
// or memory) with the BOS/EOS rules of tokenizer_config.json and the stop tokens of generation_config.json.
import { type Directory, type DirectoryInput, openDirectory, readText } from "@balora/safetensors";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { TokenizerError } from "./errors.js";

type Json = Record<string, unknown>;

async function readJson(dir: Directory, name: string, required: boolean): Promise<Json | null> {
  const file = dir.labelOf(name);
  const text = await readText(dir, name);
  if (text === undefined) {
    if (required)
      throw new TokenizerError(`${file}: not found; the model directory needs a tokenizer.json (a "fast" Hugging Face tokenizer)`);
    return null;
  }
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new TokenizerError(`${file}: invalid JSON (${(e as Error).message})`);
  }
}

/** Special tokens in tokenizer_config.json are strings or {content: string} objects. */
const tokenContent = (v: unknown): string | null =>
  typeof v === "string"
    ? v
    : v && typeof v === "object" && typeof (v as Json).content === "string"
      ? ((v as Json).content as string)
      : null;

const idList = (v: unknown): number[] =>
  typeof v === "number" ? [v] : Array.isArray(v) ? v.filter((x): x is number => typeof x === "number") : [];

export interface EncodeOptions {
  /** Add BOS/EOS as the tokenizer is configured to (default true, like HF). */
  addSpecialTokens?: boolean;
}

export class Tokenizer {
  private constructor(
    private readonly tok: HfTokenizer,
    readonly bosTokenId: number | null,
    readonly eosTokenIds: number[],
    readonly padTokenId: number | null,
    /** tokenizer_config's add_bos_token / add_eos_token when set (they override the template). */
    private readonly addBos: boolean | null,
    private readonly addEos: boolean | null,
  ) {}

  /**
   * Loads tokenizer.json (+ tokenizer_config.json, generation_config.json, config.json when present)
   * from a model directory: a path (Node), a URL, Files, or files in memory (a Map of name → bytes).
   */
  static async fromDir(dir: DirectoryInput): Promise<Tokenizer> {
    const directory = openDirectory(dir);
    const tj = (await readJson(directory, "tokenizer.json", true))!;
    const tc = (await readJson(directory, "tokenizer_config.json", false)) ?? {};
    const gen = (await readJson(directory, "generation_config.json", false)) ?? {};
    const cfg = (await readJson(directory, "config.json", false)) ?? {};
    let tok: HfTokenizer;
    try {
      tok = new HfTokenizer(tj, tc);
    } catch (e) {
      throw new TokenizerError(`${directory.labelOf("tokenizer.json")}: cannot build the tokenizer (${(e as Error).message})`);
    }
    const idOf = (key: string): number | null => {
      const content = tokenContent(tc[key]);
      return content === null ? null : (tok.token_to_id(content) ?? null);
    };
    const bos =
      idOf("bos_token") ??
      (typeof gen.bos_token_id === "number" ? gen.bos_token_id : typeof cfg.bos_token_id === "number" ? cfg.bos_token_id : null);
    let eos = idList(gen.eos_token_id);
    if (eos.length === 0) eos = idList(cfg.eos_token_id);
    const eosTok = idOf("eos_token");
    if (eos.length === 0 && eosTok !== null) eos = [eosTok];
    const pad =
      idOf("pad_token") ??
      (typeof gen.pad_token_id === "number" ? gen.pad_token_id : typeof cfg.pad_token_id === "number" ? cfg.pad_token_id : null);
    const flag = (k: string) => (typeof tc[k] === "boolean" ? (tc[k] as boolean) : null);
    return new Tokenizer(tok, bos, eos, pad, flag("add_bos_token"), flag("add_eos_token"));
  }

  get vocabSize(): number {
    return this.tok.get_vocab().size ?? Object.keys(this.tok.get_vocab()).length;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const special = opts.addSpecialTokens ?? true;
    let ids = [...this.tok.encode(text, { add_special_tokens: special }).ids];
    if (!special) return ids;
    const eosTok = this.eosTokenIds[0] ?? null;
    if (this.addBos !== null && this.bosTokenId !== null) {
      const has = ids[0] === this.bosTokenId;
      if (this.addBos && !has) ids = [this.bosTokenId, ...ids];
      if (!this.addBos && has) ids = ids.slice(1);
    }
    if (this.addEos !== null && eosTok !== null) {
      const has = ids[ids.length - 1] === eosTok;
      if (this.addEos && !has) ids = [...ids, eosTok];
      if (!this.addEos && has) ids = ids.slice(0, -1);
    }
    return ids;
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return this.tok.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }
}
