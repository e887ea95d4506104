// The demo's task metric and the rate of a known flaw: exact-match accuracy of extracted answers,
// per group (e.g. the problem kind), and how often a model gives a problem's known wrong answer.
import type { CausalLM } from "@balora/models";
import type { TextTokenizer } from "./complete.js";
import { type Gsm8kProblem, harnessNormalize, paperGold } from "./gsm8k.js";
import { evalGsm8k, type Gsm8kOptions, type Gsm8kProblemResult, type Gsm8kReport } from "./run.js";

export interface FlawGroup {
  problems: number;
  correct: number;
  accuracy: number;
}

export interface FlawReport {
  problems: number;
  /** Extracted answer equal to the reference number (no tolerance, no percentage rule). */
  correct: number;
  accuracy: number;
  /** Accuracy per value of the grouping field (empty without one). */
  byGroup: Record<string, FlawGroup>;
  /** Problems that have a known wrong answer (the flaw's answer). */
  flawed: number;
  /** Of those, how many were answered with exactly that wrong answer. */
  flawHits: number;
  /** flawHits / flawed (NaN when no problem has a flawed answer). */
  flawRate: number;
}

/** A number from an extracted answer (the paper's integer, or the harness's normalised string), else null. */
export function answerNumber(extracted: string | number | null | undefined): number | null {
  if (typeof extracted === "number") return Number.isFinite(extracted) ? extracted : null;
  if (typeof extracted !== "string") return null;
  const s = harnessNormalize(extracted).trim();
  return s !== "" && Number.isFinite(Number(s)) ? Number(s) : null;
}

/**
 * Scores answers against the reference and a known flaw. `answers[i]` is problem i's extracted
 * answer; `groups[i]` its group (or undefined); `flawedAnswers[i]` the wrong answer the flaw gives
 * (null where the flaw does not apply).
 */
export function scoreFlaw(
  references: readonly string[],
  answers: readonly (number | null)[],
  flawedAnswers: readonly (number | null)[],
  groups: readonly (string | undefined)[] = [],
): FlawReport {
  const byGroup: Record<string, FlawGroup> = {};
  let correct = 0;
  let flawed = 0;
  let flawHits = 0;
  references.forEach((ref, i) => {
    const gold = paperGold(ref);
    const ok = gold !== null && answers[i] === gold;
    if (ok) correct++;
    const g = groups[i];
    if (g !== undefined) {
      byGroup[g] ??= { problems: 0, correct: 0, accuracy: 0 };
      byGroup[g].problems++;
      if (ok) byGroup[g].correct++;
    }
    const wrong = flawedAnswers[i];
    if (wrong !== null && wrong !== undefined) {
      flawed++;
      if (answers[i] === wrong) flawHits++;
    }
  });
  for (const g of Object.values(byGroup)) g.accuracy = g.correct / g.problems;
  const n = references.length;
  return {
    problems: n,
    correct,
    accuracy: n ? correct / n : 0,
    byGroup,
    flawed,
    flawHits,
    flawRate: flawed ? flawHits / flawed : Number.NaN,
  };
}

/**
 * The flaw report of a GSM8K evaluation whose problems carry `flawField` (a number or null) and
 * optionally `groupField` in their records; answers extracted as the evaluation's mode does
 * (paper: the number after "The answer is: "; harness: strict-match).
 */
export function flawReportOf(
  results: readonly Gsm8kProblemResult[],
  records: readonly Record<string, unknown>[],
  opts: { flawField: string; groupField?: string },
): FlawReport {
  const pick = (r: Gsm8kProblemResult) => answerNumber(r.extracted.accuracy ?? r.extracted["strict-match"]);
  const flawedOf = (rec: Record<string, unknown>): number | null => {
    const v = rec[opts.flawField];
    return typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v)) ? Number(v) : null;
  };
  return scoreFlaw(
    results.map((r) => `#### ${r.gold}`),
    results.map(pick),
    records.map(flawedOf),
    opts.groupField ? records.map((rec) => (rec[opts.groupField!] === undefined ? undefined : String(rec[opts.groupField!]))) : [],
  );
}

/**
 * Evaluates a model on problems that carry a known flaw (the demo's held-out set: `kind`,
 * `flawed_answer`): the GSM8K report of the mode and the exact-match / flaw-rate report.
 */
export async function evalFlaw(
  model: CausalLM,
  tokenizer: TextTokenizer,
  problems: readonly Gsm8kProblem[],
  opts: Gsm8kOptions & { flawField?: string; groupField?: string } = {},
): Promise<{ gsm8k: Gsm8kReport; flaw: FlawReport }> {
  const gsm8k = await evalGsm8k(model, tokenizer, problems, opts);
  const flaw = flawReportOf(
    gsm8k.results,
    problems.map((p) => p.record ?? {}),
    { flawField: opts.flawField ?? "flawed_answer", groupField: opts.groupField ?? "kind" },
  );
  return { gsm8k, flaw };
}
