// Instruction data for causal-LM fine-tuning, tokenized as the BA-LoRA reference code does: prompt +
// response + EOS in one sequence, the prompt tokenized alone to find where the labels start.
import { ALPACA_PROMPT, fillTemplate, parseTemplate, templateFields } from "./prompt.js";
import { asObject, collectValid, type DataRecord, DataError, Invalid, type InvalidRecord, stringField } from "./records.js";

/** The ignored label (PyTorch's cross-entropy `ignore_index`). */
export const IGNORE_INDEX = -100;

/** What the data pipeline needs of a tokenizer (`Tokenizer` from @balora/models has it). */
export interface TokenizerLike {
  /** With `addSpecialTokens` (the default) the tokenizer adds BOS/EOS as it is configured to. */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  readonly bosTokenId: number | null;
  readonly eosTokenIds: number[];
  readonly padTokenId: number | null;
}

export interface InstructionOptions {
  /** The query and response fields (default `["instruction", "output"]`; CLI `--fields query,response`). */
  fields?: readonly [string, string];
  /** The prompt template (default `ALPACA_PROMPT`); `{instruction}` is the query field, `{name}` any other field. */
  template?: string;
  /** Sequences are cut to this many tokens, BOS included (default 512, the reference's model_max_length). */
  maxLength?: number;
  /** Count and leave out invalid rows instead of failing on the first (default false). */
  skipInvalid?: boolean;
}

/** One training sequence: token ids and labels of the same length (IGNORE_INDEX on BOS, prompt and cut-off parts). */
export interface SupervisedExample {
  /** The record's line in its file. */
  line: number;
  inputIds: number[];
  labels: number[];
  /** Whether the sequence was cut at `maxLength` (the EOS, and maybe all of the response, is then missing). */
  truncated: boolean;
}

export interface SupervisedDataset {
  examples: SupervisedExample[];
  /** Invalid rows left out (only with `skipInvalid`). */
  skipped: InvalidRecord[];
  /** Examples cut at `maxLength`. */
  truncated: number;
  /** Examples with no supervised token left (the prompt alone reaches `maxLength`): they add nothing to the loss. */
  withoutTargets: number;
}

/** The prompt and the response text of each valid row (no tokenizer needed). */
export function instructionTexts(
  records: DataRecord[],
  opts: InstructionOptions = {},
): { items: { line: number; prompt: string; response: string }[]; skipped: InvalidRecord[] } {
  const [query, response] = opts.fields ?? ["instruction", "output"];
  let parts: ReturnType<typeof parseTemplate>;
  try {
    parts = parseTemplate(opts.template ?? ALPACA_PROMPT);
  } catch (e) {
    throw new DataError(`template: ${(e as Error).message}`);
  }
  const usesQuery = templateFields(parts).some((f) => f === "instruction" || f === query);
  if (!usesQuery)
    throw new DataError(`template: it has no {instruction} (or {${query}}) placeholder, so the query field '${query}' would be dropped`);
  return collectValid(records, opts.skipInvalid ?? false, ({ line, value }) => {
    const row = asObject(value, `the fields '${query}' and '${response}'`);
    if (row instanceof Invalid) return row;
    const q = stringField(row, query);
    if (q instanceof Invalid) return q;
    const r = stringField(row, response);
    if (r instanceof Invalid) return r;
    if (r.trim() === "") return new Invalid(`field '${response}' is empty; the response is what the model learns`);
    const prompt = fillTemplate(parts, row, query);
    if (prompt instanceof Invalid) return prompt;
    return { line, prompt, response: r };
  });
}

/** The first EOS id, which ends every target. */
function eosOf(tokenizer: TokenizerLike): number {
  const eos = tokenizer.eosTokenIds[0];
  if (eos === undefined) throw new DataError("tokenizer: no EOS token (eos_token in tokenizer_config.json or eos_token_id in config.json)");
  return eos;
}

/**
 * Encodes a prompt with the tokenizer's special tokens but without a trailing EOS (one that
 * add_eos_token appends): a prompt to continue must not end in one, and a target's EOS is placed explicitly.
 */
export function encodePrompt(tokenizer: TokenizerLike, text: string): number[] {
  const ids = tokenizer.encode(text);
  return ids.length > 0 && tokenizer.eosTokenIds.includes(ids[ids.length - 1]) ? ids.slice(0, -1) : ids;
}

/**
 * One example, as the reference `preprocess`: `ids = tokenize(prompt + response) + [EOS]` (BOS when
 * the tokenizer adds one), `labels = ids` with the first `len(tokenize(prompt))` set to IGNORE_INDEX,
 * both cut to `maxLength`. The reference appends the EOS *text* before tokenizing; appending its id
 * gives the same ids with every tokenizer whose EOS is a special (added) token, as HF's are. With
 * add_eos_token the reference gets two EOS and masks the first response token; here there is one
 * EOS and the boundary is the prompt's own length.
 */
export function encodeInstruction(tokenizer: TokenizerLike, prompt: string, response: string, maxLength: number): SupervisedExample {
  const eos = eosOf(tokenizer);
  const full = [...encodePrompt(tokenizer, prompt + response), eos];
  const promptLength = encodePrompt(tokenizer, prompt).length;
  const truncated = full.length > maxLength;
  const inputIds = truncated ? full.slice(0, maxLength) : full;
  const labels = inputIds.map((id, t) => (t < promptLength ? IGNORE_INDEX : id));
  return { line: 0, inputIds, labels, truncated };
}

function checkMaxLength(maxLength: number): void {
  if (!Number.isInteger(maxLength) || maxLength < 2) throw new DataError(`maxLength must be an integer >= 2, got ${maxLength}`);
}

/** Validates, templates and tokenizes instruction records into supervised examples. */
export function buildInstructionDataset(records: DataRecord[], tokenizer: TokenizerLike, opts: InstructionOptions = {}): SupervisedDataset {
  const maxLength = opts.maxLength ?? 512;
  checkMaxLength(maxLength);
  const { items, skipped } = instructionTexts(records, opts);
  const examples = items.map(({ line, prompt, response }) => ({ ...encodeInstruction(tokenizer, prompt, response, maxLength), line }));
  return summarize(examples, skipped);
}

function summarize(examples: SupervisedExample[], skipped: InvalidRecord[]): SupervisedDataset {
  return {
    examples,
    skipped,
    truncated: examples.filter((e) => e.truncated).length,
    withoutTargets: examples.filter((e) => supervisedCount(e.labels) === 0).length,
  };
}

export interface TextOptions {
  /** The field holding the text (default "text"). */
  field?: string;
  maxLength?: number;
  skipInvalid?: boolean;
}

/**
 * Raw text for language-model perplexity: every token is a target (the tokenizer's BOS, when it adds
 * one, is context only), cut to `maxLength`; no EOS is added.
 */
export function buildTextDataset(records: DataRecord[], tokenizer: TokenizerLike, opts: TextOptions = {}): SupervisedDataset {
  const field = opts.field ?? "text";
  const maxLength = opts.maxLength ?? 512;
  checkMaxLength(maxLength);
  const { items, skipped } = collectValid(records, opts.skipInvalid ?? false, ({ line, value }) => {
    const row = asObject(value, `the field '${field}'`);
    if (row instanceof Invalid) return row;
    const text = stringField(row, field);
    if (text instanceof Invalid) return text;
    const ids = tokenizer.encode(text);
    if (ids.length < 2) return new Invalid(`field '${field}' has ${ids.length} token(s); perplexity needs at least 2`);
    const truncated = ids.length > maxLength;
    const inputIds = truncated ? ids.slice(0, maxLength) : ids;
    const bos = tokenizer.bosTokenId;
    const labels = inputIds.map((id, t) => (t === 0 && id === bos ? IGNORE_INDEX : id));
    return { line, inputIds, labels, truncated };
  });
  return summarize(items, skipped);
}

/** Supervised positions after the causal shift: labels[t] for t >= 1 that are not IGNORE_INDEX. */
export function supervisedCount(labels: ArrayLike<number>): number {
  let n = 0;
  for (let t = 1; t < labels.length; t++) if (labels[t] !== IGNORE_INDEX) n++;
  return n;
}

/** A right-padded batch, row-major [batchSize, seqLength]. */
export interface CausalBatch {
  inputIds: Int32Array;
  /** 1 on each example's tokens, 0 on padding (from the lengths, not from the pad id). */
  attentionMask: Int32Array;
  /** IGNORE_INDEX on the prompt, BOS and padding. */
  labels: Int32Array;
  batchSize: number;
  seqLength: number;
  /** Positions whose next token is supervised (what a token-averaged loss divides by). */
  supervisedTokens: number;
}

/** The id padding is written with: the tokenizer's pad token, else EOS (the reference sets pad = eos), else 0. */
export const padTokenIdOf = (tokenizer: TokenizerLike): number => tokenizer.padTokenId ?? tokenizer.eosTokenIds[0] ?? 0;

/** Pads examples on the right to the longest (or a multiple of `padToMultipleOf`). */
export function collateCausal(examples: SupervisedExample[], padTokenId: number, opts: { padToMultipleOf?: number } = {}): CausalBatch {
  if (examples.length === 0) throw new DataError("collateCausal: an empty batch");
  const multiple = opts.padToMultipleOf ?? 1;
  const longest = Math.max(...examples.map((e) => e.inputIds.length));
  const seqLength = Math.ceil(longest / multiple) * multiple;
  const B = examples.length;
  const inputIds = new Int32Array(B * seqLength).fill(padTokenId);
  const attentionMask = new Int32Array(B * seqLength);
  const labels = new Int32Array(B * seqLength).fill(IGNORE_INDEX);
  let supervisedTokens = 0;
  examples.forEach((e, b) => {
    inputIds.set(e.inputIds, b * seqLength);
    attentionMask.fill(1, b * seqLength, b * seqLength + e.inputIds.length);
    labels.set(e.labels, b * seqLength);
    supervisedTokens += supervisedCount(e.labels);
  });
  return { inputIds, attentionMask, labels, batchSize: B, seqLength, supervisedTokens };
}
