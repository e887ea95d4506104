// GSM8K scoring under two protocols, as pure functions of completions: the BA-LoRA/MetaMath one (number
// after "The answer is: ", rounded, compared numerically) and lm-evaluation-harness strict/flexible match.
import { ALPACA_COT_PROMPT } from "../data/prompt.js";
import { asObject, collectValid, type DataRecord, Invalid, type InvalidRecord, stringField } from "../data/records.js";

export type Gsm8kMode = "paper" | "harness";

/** A GSM8K problem: the question and the reference answer text (its final answer after "#### "). */
export interface Gsm8kProblem {
  line: number;
  question: string;
  answer: string;
  /** The whole record (other fields, e.g. a problem's kind or its known wrong answer). */
  record?: Record<string, unknown>;
}

/** The problems of GSM8K-format records (`question`, `answer` with "#### N"; other field names with `fields`). */
export function gsm8kProblems(
  records: DataRecord[],
  opts: { fields?: readonly [string, string]; skipInvalid?: boolean } = {},
): { items: Gsm8kProblem[]; skipped: InvalidRecord[] } {
  const [q, a] = opts.fields ?? ["question", "answer"];
  return collectValid(records, opts.skipInvalid ?? false, ({ line, value }) => {
    const row = asObject(value, `the fields '${q}' and '${a}'`);
    if (row instanceof Invalid) return row;
    const question = stringField(row, q);
    if (question instanceof Invalid) return question;
    const answer = stringField(row, a);
    if (answer instanceof Invalid) return answer;
    if (paperGold(answer) === null) return new Invalid(`field '${a}' has no final answer: expected '#### N' with a number N`);
    return { line, question, answer, record: row };
  });
}

// ---- the BA-LoRA / MetaMath protocol (llm172/BA-LoRA inference/gsm8k_inference.py) ----

/** The paper protocol's stop strings (generation ends before the first of them). */
export const PAPER_STOPS = ["Instruction:", "Instruction", "Response:", "Response"] as const;
/** The paper protocol's generation budget. */
export const PAPER_MAX_NEW_TOKENS = 1024;

/** The paper prompt: the Alpaca prompt with the question, then " Let's think step by step." */
export const paperPrompt = (question: string): string => ALPACA_COT_PROMPT.replace("{instruction}", () => question);

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

const isNumber = (s: string): boolean => s.trim() !== "" && Number.isFinite(Number(s));

/**
 * The paper's answer extraction: the text after the last "The answer is: ", its first number
 * (`[-+]?\d*[.,/]?\d+`; commas dropped, a fraction evaluated), rounded to an integer (Python's
 * round); null when there is none.
 */
export function extractPaperAnswer(completion: string): number | null {
  const parts = completion.split("The answer is: ");
  if (parts.length < 2) return null;
  const m = /[-+]?\d*[.,/]?\d+/.exec(parts[parts.length - 1].trim());
  if (!m) return null;
  const s = m[0];
  if (s.includes("/")) {
    const [num, den] = s.split("/");
    if (!isNumber(num) || !isNumber(den)) return null;
    const v = den === "0" ? Number(num) : Number(num) / Number(den);
    return Number.isFinite(v) ? roundHalfEven(v) : null;
  }
  const v = Number(s.replace(/,/g, ""));
  return Number.isFinite(v) ? roundHalfEven(v) : null;
}

/** The reference's final answer (after the first "#### ", commas dropped), or null. */
export function paperGold(answer: string): number | null {
  const i = answer.indexOf("#### ");
  if (i < 0) return null;
  const s = answer
    .slice(i + 5)
    .trim()
    .replace(/,/g, "");
  return isNumber(s) ? Number(s) : null;
}

const isClose = (a: number, b: number, rel = 1e-4): boolean => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));

/**
 * The paper's comparison: equal, or `math_equal` of its grader, which also accepts the gold
 * answer times 100 or divided by 100 (relative tolerance 1e-4) — the reference's percentage rule.
 */
export function paperCorrect(predicted: number | null, gold: number): boolean {
  if (predicted === null) return false;
  return predicted === gold || [gold / 100, gold, gold * 100].some((g) => isClose(g, predicted));
}

// ---- lm-evaluation-harness gsm8k.yaml ----

/** The harness's stop strings. */
export const HARNESS_STOPS = ["Question:", "</s>", "<|im_end|>"] as const;
/** The harness's default generation budget (max_gen_toks). */
export const HARNESS_MAX_NEW_TOKENS = 256;
/** The harness's answer when a filter finds nothing. */
export const INVALID = "[invalid]";

/** The harness prompt: `Question: {q}\nAnswer:`, after few-shot examples `Question: …\nAnswer: {answer}` joined by blank lines. */
export function harnessPrompt(question: string, fewshot: readonly Gsm8kProblem[] = []): string {
  const shots = fewshot.map((p) => `Question: ${p.question}\nAnswer: ${p.answer}\n\n`).join("");
  return `${shots}Question: ${question}\nAnswer:`;
}

/** strict-match: the first `#### (-?[0-9.,]+)`, stripped, else "[invalid]". */
export function extractStrict(completion: string): string {
  const m = /#### (-?[0-9.,]+)/.exec(completion);
  return m ? m[1].trim() : INVALID;
}

/** flexible-extract: the last match of `(-?[$0-9.,]{2,})|(-?[0-9]+)` (its non-empty group), stripped, else "[invalid]". */
export function extractFlexible(completion: string): string {
  const all = [...completion.matchAll(/(-?[$0-9.,]{2,})|(-?[0-9]+)/g)];
  const last = all.at(-1);
  if (!last) return INVALID;
  return (last[1] || last[2] || INVALID).trim();
}

/** The harness's exact_match normalisation (regexes_to_ignore `,` `\$` `(?s).*#### ` `\.$`, then ignore_case). */
export function harnessNormalize(s: string): string {
  return s
    .replace(/,/g, "")
    .replace(/\$/g, "")
    .replace(/[\s\S]*#### /g, "")
    .replace(/\.(?=\n?$)/, "")
    .toLowerCase();
}

/** exact_match of the harness: the normalised prediction equals the normalised reference answer text. */
export const harnessCorrect = (extracted: string, answer: string): boolean => harnessNormalize(extracted) === harnessNormalize(answer);

/** One problem scored under a mode: the extracted answer(s) and whether each metric counts it correct. */
export interface Gsm8kScore {
  extracted: Record<string, string | number | null>;
  correct: Record<string, boolean>;
}

/** The metrics of each mode, in report order. */
export const GSM8K_METRICS: Record<Gsm8kMode, readonly string[]> = {
  paper: ["accuracy"],
  harness: ["strict-match", "flexible-extract"],
};

export function scoreGsm8k(mode: Gsm8kMode, completion: string, answer: string): Gsm8kScore {
  if (mode === "paper") {
    const pred = extractPaperAnswer(completion);
    const gold = paperGold(answer);
    return { extracted: { accuracy: pred }, correct: { accuracy: gold !== null && paperCorrect(pred, gold) } };
  }
  const strict = extractStrict(completion);
  const flexible = extractFlexible(completion);
  return {
    extracted: { "strict-match": strict, "flexible-extract": flexible },
    correct: { "strict-match": harnessCorrect(strict, answer), "flexible-extract": harnessCorrect(flexible, answer) },
  };
}
