// Autoregressive generation for one sequence: greedy or temperature + top-p sampling (seeded), stop
// at EOS or after maxNewTokens, with a KV cache (or full recomputation, which must agree).
import * as T from "@balora/tensor";
import { ArgumentError } from "@balora/tensor";
import { type CausalLM, disposeCache, emptyCache, type KVCache } from "./model.js";

export interface GenerateOptions {
  maxNewTokens?: number;
  /** 0 (default) is greedy decoding; > 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Nucleus sampling: keep the most likely tokens whose probability adds up to topP (default 1). */
  topP?: number;
  seed?: number;
  /** Stop tokens (default: the model config's eos_token_id). */
  eosTokenIds?: number[];
  /** Reuse keys and values of earlier positions (default true). */
  useCache?: boolean;
  /** Called with each new token as soon as it is chosen. */
  onToken?: (id: number) => void;
  /**
   * Called (once, before generating) with a one-line warning when the prompt plus `maxNewTokens` may
   * run past the config's `max_position_embeddings`. Generation goes on, as in transformers: RoPE
   * extrapolates to the later positions, but the model was not trained there and quality may drop.
   * Default: `console.warn`.
   */
  onWarning?: (message: string) => void;
}

/** The warning `generate` gives when a sequence may run past `max_position_embeddings`, or null. */
export function positionWarning(promptTokens: number, maxNewTokens: number, maxPositions: number): string | null {
  const total = promptTokens + maxNewTokens;
  if (total <= maxPositions) return null;
  const what =
    promptTokens > maxPositions
      ? `the prompt has ${promptTokens} tokens, more than`
      : `the prompt (${promptTokens} tokens) plus up to ${maxNewTokens} new tokens (${total}) exceed`;
  return (
    `generate: ${what} the model's max_position_embeddings (${maxPositions}); ` +
    "later positions extrapolate RoPE as transformers does, and quality may degrade"
  );
}

/** Picks the next token from one row of logits, HF-style: temperature, then top-p, then sample. */
export function sampleToken(logits: ArrayLike<number>, temperature: number, topP: number, rng: T.Rng): number {
  if (temperature <= 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) mx = Math.max(mx, logits[i] / temperature);
  const probs = Array.from(logits, (v) => Math.exp(v / temperature - mx));
  const total = probs.reduce((a, b) => a + b, 0);
  const order = probs.map((_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
  // keep tokens while the mass before them is below topP (always at least one)
  let kept = 0;
  let mass = 0;
  for (const i of order) {
    if (kept > 0 && mass >= topP * total) break;
    mass += probs[i];
    kept++;
  }
  let r = rng.next() * mass;
  for (let k = 0; k < kept; k++) {
    r -= probs[order[k]];
    if (r <= 0) return order[k];
  }
  return order[kept - 1];
}

/** Generates up to `maxNewTokens` tokens after `promptIds`; returns only the new tokens. */
export async function generate(model: CausalLM, promptIds: number[], opts: GenerateOptions = {}): Promise<number[]> {
  const maxNew = opts.maxNewTokens ?? 32;
  const temperature = opts.temperature ?? 0;
  const topP = opts.topP ?? 1;
  if (promptIds.length === 0) throw new ArgumentError("generate: the prompt is empty (tokenize some text first)");
  if (!Number.isInteger(maxNew) || maxNew < 0)
    throw new ArgumentError(`generate: maxNewTokens must be a non-negative integer, got ${maxNew}`);
  if (!(topP > 0 && topP <= 1)) throw new ArgumentError(`generate: topP must be in (0, 1], got ${topP}`);
  if (!(temperature >= 0)) throw new ArgumentError(`generate: temperature must be >= 0, got ${temperature}`);
  const V = model.config.vocabSize;
  const bad = promptIds.find((id) => !Number.isInteger(id) || id < 0 || id >= V);
  if (bad !== undefined) throw new ArgumentError(`generate: prompt token ${bad} is outside the vocabulary [0, ${V})`);
  const warning = positionWarning(promptIds.length, maxNew, model.config.maxPositions);
  if (warning) (opts.onWarning ?? console.warn)(warning);
  const eos = new Set(opts.eosTokenIds ?? model.config.eosTokenIds);
  const useCache = opts.useCache ?? true;
  const rng = new T.Rng(opts.seed ?? 0);
  const backend = model.model.invFreq.backend;
  const cache: KVCache | null = useCache ? emptyCache(model.config.numLayers) : null;
  const seq = [...promptIds];
  const out: number[] = [];
  try {
    for (let step = 0; step < maxNew; step++) {
      const feed = cache && step > 0 ? seq.slice(-1) : seq;
      const last = T.noGrad(() =>
        T.tidy(() => {
          const ids = T.tensor(Int32Array.from(feed), [1, feed.length], { backend });
          const logits = model.forward(ids, cache ? { cache } : {});
          return T.contiguous(T.narrow(logits, 1, feed.length - 1, 1));
        }),
      );
      const row = await last.data();
      last.dispose();
      const next = sampleToken(row, temperature, topP, rng);
      out.push(next);
      seq.push(next);
      opts.onToken?.(next);
      if (eos.has(next)) break;
    }
  } finally {
    if (cache) disposeCache(cache);
  }
  return out;
}
