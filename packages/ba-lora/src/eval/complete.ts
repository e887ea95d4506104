// Greedy completion of one text prompt with stop strings (what vLLM's `stop` and the harness's
// `until` do): generation ends at EOS, at max tokens, or once the text contains a stop string.
import { type CausalLM, generate } from "@balora/models";
import { encodePrompt, type TokenizerLike } from "../data/instruction.js";

/** A tokenizer that also decodes (`Tokenizer` from @balora/models). */
export interface TextTokenizer extends TokenizerLike {
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
}

export interface CompleteOptions {
  maxNewTokens: number;
  /** The completion is cut before the first of these; generation stops as soon as one appears. */
  stop?: readonly string[];
  /** Called with generate's one-line warning (position past max_position_embeddings). */
  onWarning?: (message: string) => void;
}

export interface Completion {
  /** The new text (special tokens skipped), cut before the first stop string. */
  text: string;
  /** New tokens generated (including the one that completed a stop string, or the EOS). */
  tokens: number;
  stoppedBy: "eos" | "stop" | "length";
}

/** Thrown from generate's onToken to end generation early (generate frees its KV cache on the way out). */
class StopReached extends Error {}

/** The index of the earliest stop string in `text`, or -1. */
export function firstStop(text: string, stops: readonly string[]): number {
  let at = -1;
  for (const s of stops) {
    const i = s === "" ? -1 : text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

/** Continues `prompt` greedily (encoded with the tokenizer's BOS, as vLLM and the harness do; never ending in EOS). */
export async function complete(model: CausalLM, tokenizer: TextTokenizer, prompt: string, opts: CompleteOptions): Promise<Completion> {
  const stops = opts.stop ?? [];
  const ids: number[] = [];
  const eos = new Set(tokenizer.eosTokenIds.length ? tokenizer.eosTokenIds : model.config.eosTokenIds);
  const decode = () => tokenizer.decode(ids, { skipSpecialTokens: true });
  let stoppedBy: Completion["stoppedBy"] = "length";
  try {
    await generate(model, encodePrompt(tokenizer, prompt), {
      maxNewTokens: opts.maxNewTokens,
      eosTokenIds: [...eos],
      onWarning: opts.onWarning ?? (() => {}),
      onToken: (id) => {
        ids.push(id);
        if (eos.has(id)) stoppedBy = "eos";
        else if (stops.length && firstStop(decode(), stops) >= 0) throw new StopReached();
      },
    });
  } catch (e) {
    if (!(e instanceof StopReached)) throw e;
    stoppedBy = "stop";
  }
  const text = decode();
  const cut = firstStop(text, stops);
  return { text: cut >= 0 ? text.slice(0, cut) : text, tokens: ids.length, stoppedBy };
}
