// Evaluation loops over in-memory problems and examples: GSM8K generation + scoring, and token-level
// perplexity; the CLI (`balora eval`) and the trainer call these with a loaded model and tokenizer.
import { type CausalLM, supervisedRows } from "@balora/models";
import * as T from "@balora/tensor";
import { collateCausal, type SupervisedExample } from "../data/instruction.js";
import { type Completion, complete, type TextTokenizer } from "./complete.js";
import {
  GSM8K_METRICS,
  type Gsm8kMode,
  type Gsm8kProblem,
  type Gsm8kScore,
  HARNESS_MAX_NEW_TOKENS,
  HARNESS_STOPS,
  harnessPrompt,
  PAPER_MAX_NEW_TOKENS,
  PAPER_STOPS,
  paperPrompt,
  scoreGsm8k,
} from "./gsm8k.js";

export interface Gsm8kOptions {
  mode?: Gsm8kMode;
  /** Default: the protocol's (1024 paper, 256 harness). */
  maxNewTokens?: number;
  /** Harness mode: few-shot examples placed before each question. */
  fewshot?: readonly Gsm8kProblem[];
  /** Called after each problem (progress). */
  onProblem?: (result: Gsm8kProblemResult, index: number, total: number) => void;
  onWarning?: (message: string) => void;
}

export interface Gsm8kProblemResult extends Gsm8kScore {
  index: number;
  line: number;
  /** The reference answer text's final answer (after "#### "). */
  gold: string;
  completion: string;
  tokens: number;
  stoppedBy: Completion["stoppedBy"];
  seconds: number;
}

export interface Gsm8kReport {
  task: "gsm8k";
  mode: Gsm8kMode;
  problems: number;
  maxNewTokens: number;
  shots: number;
  /** Fraction correct per metric (paper: `accuracy`; harness: `strict-match`, `flexible-extract`). */
  metrics: Record<string, number>;
  /** Problems correct per metric. */
  correct: Record<string, number>;
  generatedTokens: number;
  seconds: number;
  results: Gsm8kProblemResult[];
}

export const gsm8kPrompt = (mode: Gsm8kMode, question: string, fewshot: readonly Gsm8kProblem[] = []): string =>
  mode === "paper" ? paperPrompt(question) : harnessPrompt(question, fewshot);

/** Generates an answer for each problem (greedy, with the mode's stop strings) and scores it. */
export async function evalGsm8k(
  model: CausalLM,
  tokenizer: TextTokenizer,
  problems: readonly Gsm8kProblem[],
  opts: Gsm8kOptions = {},
): Promise<Gsm8kReport> {
  const mode = opts.mode ?? "paper";
  const fewshot = mode === "harness" ? (opts.fewshot ?? []) : [];
  const maxNewTokens = opts.maxNewTokens ?? (mode === "paper" ? PAPER_MAX_NEW_TOKENS : HARNESS_MAX_NEW_TOKENS);
  const stop = mode === "paper" ? PAPER_STOPS : HARNESS_STOPS;
  const metrics = GSM8K_METRICS[mode];
  const correct = Object.fromEntries(metrics.map((m) => [m, 0]));
  const results: Gsm8kProblemResult[] = [];
  const start = performance.now();
  let warned = false;
  for (const [index, p] of problems.entries()) {
    const t0 = performance.now();
    const c = await complete(model, tokenizer, gsm8kPrompt(mode, p.question, fewshot), {
      maxNewTokens,
      stop,
      onWarning: (m) => {
        if (!warned) opts.onWarning?.(m);
        warned = true;
      },
    });
    const score = scoreGsm8k(mode, c.text, p.answer);
    for (const m of metrics) if (score.correct[m]) correct[m]++;
    const gold = p.answer.slice(p.answer.indexOf("#### ") + 5).trim();
    const r = {
      index,
      line: p.line,
      gold,
      completion: c.text,
      ...score,
      tokens: c.tokens,
      stoppedBy: c.stoppedBy,
      seconds: (performance.now() - t0) / 1000,
    };
    results.push(r);
    opts.onProblem?.(r, index, problems.length);
  }
  const n = problems.length;
  return {
    task: "gsm8k",
    mode,
    problems: n,
    maxNewTokens,
    shots: fewshot.length,
    metrics: Object.fromEntries(metrics.map((m) => [m, n ? correct[m] / n : 0])),
    correct,
    generatedTokens: results.reduce((s, r) => s + r.tokens, 0),
    seconds: (performance.now() - start) / 1000,
    results,
  };
}

export interface PerplexityReport {
  task: "perplexity";
  examples: number;
  /** Target tokens scored (positions whose next token is supervised). */
  tokens: number;
  /** Mean negative log-likelihood per target token (nats). */
  loss: number;
  perplexity: number;
  seconds: number;
}

/**
 * Token-level perplexity exp(Σ NLL / N) over every supervised target token of the examples (the
 * response + EOS of instruction data, all tokens after the first of raw text), in batches of
 * `batchSize`; only the supervised rows go through the LM head. The sum is kept in float64 on the host.
 */
export async function evalPerplexity(
  model: CausalLM,
  examples: readonly SupervisedExample[],
  opts: { batchSize?: number; padTokenId: number; onBatch?: (done: number, total: number) => void },
): Promise<PerplexityReport> {
  const batchSize = opts.batchSize ?? 8;
  const backend = model.model.invFreq.backend;
  const start = performance.now();
  let nll = 0;
  let tokens = 0;
  for (let i = 0; i < examples.length; i += batchSize) {
    const batch = collateCausal(examples.slice(i, i + batchSize), opts.padTokenId);
    const { rows, targets } = supervisedRows(batch.labels, batch.batchSize, batch.seqLength);
    if (rows.length > 0) {
      const sum = T.noGrad(() =>
        T.tidy(() => {
          const shape = [batch.batchSize, batch.seqLength];
          const ids = T.tensor(batch.inputIds, shape, { backend });
          const attentionMask = T.tensor(batch.attentionMask, shape, { backend });
          const logits = model.forward(ids, { attentionMask, rows: T.tensor(rows, [rows.length], { backend }) });
          return T.crossEntropy(logits, T.tensor(targets, [targets.length], { backend }), { reduction: "sum" });
        }),
      );
      nll += await sum.item();
      sum.dispose();
      tokens += rows.length;
    }
    opts.onBatch?.(Math.min(i + batchSize, examples.length), examples.length);
  }
  const loss = tokens ? nll / tokens : Number.NaN;
  return {
    task: "perplexity",
    examples: examples.length,
    tokens,
    loss,
    perplexity: Math.exp(loss),
    seconds: (performance.now() - start) / 1000,
  };
}
