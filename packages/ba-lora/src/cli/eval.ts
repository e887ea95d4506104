// `balora eval gsm8k|perplexity`: GSM8K accuracy under the paper (BA-LoRA/MetaMath) or harness
// protocol, or token-level perplexity, of a model with an optional adapter; a summary or --json.
import { Tokenizer } from "@balora/models";
import { buildInstructionDataset, buildTextDataset, encodePrompt, padTokenIdOf } from "../data/instruction.js";
import type { DataRecord, InvalidRecord } from "../data/records.js";
import { flawReportOf } from "../eval/flaw.js";
import { type Gsm8kMode, gsm8kProblems } from "../eval/gsm8k.js";
import { evalGsm8k, evalPerplexity, type Gsm8kProblemResult, gsm8kPrompt } from "../eval/run.js";
import { CliError, type FlagSpecs, integer, parse, UsageError } from "./args.js";
import { parseFields, readRecords, readTemplate } from "./data-file.js";
import { lossCommand } from "./loss.js";
import type { Command } from "./main.js";
import { ADAPTER_FLAG, checkCausal, cliBackend, loadCausal, MODEL_FLAG, requireLongestFits, requireTokensFit } from "./model.js";
import { progress } from "./progress.js";

const COMMON = {
  model: MODEL_FLAG,
  adapter: ADAPTER_FLAG,
  data: { type: "string", value: "FILE", required: true, help: "JSONL (or JSON array) data file" },
  limit: { type: "number", help: "evaluate only the first N rows" },
  skipInvalid: { type: "boolean", help: "skip invalid rows (counted in the output) instead of stopping at the first" },
  json: { type: "boolean", help: "print one JSON object on stdout (every problem's answer with gsm8k)" },
  quiet: { type: "boolean", help: "no progress lines on stderr" },
} satisfies FlagSpecs;

const GSM8K_FLAGS = {
  ...COMMON,
  mode: { type: "string", value: "paper|harness", default: "paper", help: "the protocol (see above)" },
  maxNewTokens: {
    type: "string",
    value: "N",
    default: "auto",
    help: "most new tokens per problem; auto is the protocol's: 1024 paper, 256 harness",
  },
  fields: { type: "string", value: "Q,A", default: "question,answer", help: "the question and answer fields (the answer ends '#### N')" },
  fewshot: { type: "string", value: "FILE", help: "harness mode: few-shot examples (GSM8K JSONL; the harness uses the train split)" },
  shots: { type: "number", default: 5, help: "harness mode with --fewshot: how many of its first rows go before each question" },
  by: { type: "string", value: "FIELD", help: "also report exact-match accuracy per value of this field (e.g. kind)" },
  flawed: {
    type: "string",
    value: "FIELD",
    help: "also report how often the answer is this field's number, a known wrong answer (null where none)",
  },
} satisfies FlagSpecs;

const PERPLEXITY_FLAGS = {
  ...COMMON,
  fields: { type: "string", value: "Q,R", default: "instruction,output", help: "instruction data: the query and response fields" },
  template: {
    type: "string",
    value: "FILE",
    help: "instruction data: a prompt template file with {instruction}; none: the Alpaca prompt",
  },
  textField: { type: "string", value: "NAME", help: "raw text: score every token of this field instead of instruction responses" },
  maxLength: { type: "number", default: 512, help: "tokens per sequence (longer ones are cut)" },
  batchSize: { type: "number", default: 8, help: "sequences per forward pass" },
} satisfies FlagSpecs;

const USAGE =
  "balora eval gsm8k|perplexity --model DIR [--adapter DIR] --data FILE.jsonl [--limit N] [--mode paper|harness] " +
  "[--max-new-tokens N] [--json]";

const DETAILS = `
gsm8k: greedy generation per problem, scored as
  --mode paper    the BA-LoRA/MetaMath protocol: the Alpaca prompt + " Let's think step by step.", stops at
                  "Instruction:", "Instruction", "Response:", "Response"; the answer is the number after the last
                  "The answer is: " (commas dropped, fractions evaluated, rounded), compared with the number after
                  "#### " (equal, or x100 / x0.01 within 1e-4 as the reference grader allows). Metric: accuracy.
  --mode harness  lm-evaluation-harness gsm8k: "Question: ...\\nAnswer:" (after --shots examples of --fewshot FILE),
                  stops at "Question:", "</s>", "<|im_end|>"; strict-match (the first "#### N") and flexible-extract
                  (the last number), exact match after dropping ",", "$", "... #### " and a final ".", ignoring case.
perplexity: exp(mean negative log-likelihood) over target tokens: the response + EOS of instruction data
  (--fields, --template; the prompt is context only), or every token after the first of --text-field.
loss: the same as 'balora loss' (see 'balora loss --help' for its options).
Options of one task are refused by the other.`;

export const evalCommand: Command = {
  summary: "evaluate a model: GSM8K accuracy (paper or harness protocol) or perplexity",
  usage: USAGE,
  flags: {
    ...GSM8K_FLAGS,
    ...PERPLEXITY_FLAGS,
    fields: { ...GSM8K_FLAGS.fields, help: "gsm8k: question,answer; perplexity: instruction,output" },
  },
  details: DETAILS,
  async run(argv) {
    const [task, ...rest] = argv;
    if (task === "gsm8k") return gsm8k(rest);
    if (task === "perplexity") return perplexity(rest);
    if (task === "loss") return lossCommand.run(rest);
    throw new UsageError(
      task === undefined || task.startsWith("-")
        ? "name the evaluation first: balora eval gsm8k|perplexity|loss ..."
        : `unknown evaluation '${task}' (gsm8k, perplexity, loss)`,
    );
  },
};

function limitOf(flag: number | undefined): number {
  return flag === undefined ? Number.POSITIVE_INFINITY : integer("--limit", flag, 1);
}

const skippedNote = (skipped: InvalidRecord[], file: string): void => {
  if (skipped.length)
    progress(`skipped ${skipped.length} invalid row(s) of ${file} (first: line ${skipped[0].line}: ${skipped[0].reason})`);
};

const first = (records: DataRecord[], limit: number): DataRecord[] => (Number.isFinite(limit) ? records.slice(0, limit) : records);

async function gsm8k(argv: string[]): Promise<void> {
  const a = parse(argv, GSM8K_FLAGS);
  const mode = a.mode as Gsm8kMode;
  if (mode !== "paper" && mode !== "harness") throw new UsageError(`--mode must be paper or harness, got '${a.mode}'`);
  const maxNewTokens = a.maxNewTokens === "auto" ? undefined : integer("--max-new-tokens", Number(a.maxNewTokens), 1);
  const limit = limitOf(a.limit);
  const fields = parseFields("--fields", a.fields!);
  if (a.fewshot && mode !== "harness") throw new UsageError("--fewshot is for --mode harness (the paper protocol is zero-shot)");
  const shots = integer("--shots", a.shots!, 0);
  const cfg = await checkCausal(a.model!, a.adapter, "eval");
  const { items: problems, skipped } = gsm8kProblems(first(await readRecords("--data", a.data!), limit), {
    fields,
    skipInvalid: a.skipInvalid,
  });
  skippedNote(skipped, a.data!);
  if (problems.length === 0) throw new CliError(`--data ${a.data}: no problems to evaluate`);
  const fewshot = a.fewshot ? gsm8kProblems((await readRecords("--fewshot", a.fewshot)).slice(0, shots), { fields }).items : [];
  const tokenizer = await Tokenizer.fromDir(a.model!);
  const backend = await cliBackend();
  const longest = Math.max(...problems.map((p) => encodePrompt(tokenizer, gsm8kPrompt(mode, p.question, fewshot)).length));
  requireTokensFit("the longest prompt", longest, cfg, backend, 1, "use --limit, fewer --shots or a shorter question");
  const model = await loadCausal(a.model!, a.adapter);
  const report = await evalGsm8k(model, tokenizer, problems, {
    mode,
    maxNewTokens,
    fewshot,
    onWarning: (m) => console.error(`balora eval: warning: ${m.replace(/^generate: /, "")}`),
    onProblem: (r, i, n) =>
      progress(`gsm8k ${i + 1}/${n} (line ${r.line}): gold ${r.gold}, ${answerLine(r)} (${r.tokens} tokens, ${r.seconds.toFixed(1)} s)`),
  });
  const records = problems.map((p) => p.record ?? {});
  const flaw = a.by || a.flawed ? flawReportOf(report.results, records, { flawField: a.flawed ?? "", groupField: a.by }) : null;
  if (a.json) {
    const out = {
      task: "gsm8k",
      mode,
      model: a.model,
      adapter: a.adapter ?? null,
      data: a.data,
      problems: report.problems,
      skipped: skipped.length,
      max_new_tokens: report.maxNewTokens,
      shots: report.shots,
      metrics: report.metrics,
      correct: report.correct,
      generated_tokens: report.generatedTokens,
      seconds: round(report.seconds),
      ...(flaw
        ? {
            exact: { accuracy: flaw.accuracy, correct: flaw.correct, by: a.by ?? null, groups: flaw.byGroup },
            ...(a.flawed ? { flaw: { field: a.flawed, problems: flaw.flawed, hits: flaw.flawHits, rate: flaw.flawRate } } : {}),
          }
        : {}),
      results: report.results.map((r) => ({
        index: r.index,
        line: r.line,
        gold: r.gold,
        extracted: r.extracted,
        correct: r.correct,
        completion: r.completion,
        tokens: r.tokens,
        stopped_by: r.stoppedBy,
        seconds: round(r.seconds),
      })),
    };
    console.log(JSON.stringify(out));
    return;
  }
  const parts = Object.entries(report.metrics).map(([m, v]) => `${m} ${v.toFixed(4)} (${report.correct[m]}/${report.problems})`);
  console.log(`gsm8k ${mode}: ${parts.join(", ")} in ${report.seconds.toFixed(1)} s`);
  if (flaw && a.by)
    console.log(
      `exact match by ${a.by}: ${Object.entries(flaw.byGroup)
        .map(([g, v]) => `${g} ${v.accuracy.toFixed(4)} (${v.correct}/${v.problems})`)
        .join(", ")}`,
    );
  if (flaw && a.flawed) console.log(`flaw rate (answer = ${a.flawed}): ${flaw.flawRate.toFixed(4)} (${flaw.flawHits}/${flaw.flawed})`);
}

const round = (s: number): number => Math.round(s * 1000) / 1000;

function answerLine(r: Gsm8kProblemResult): string {
  return Object.keys(r.extracted)
    .map(
      (m) => `${Object.keys(r.extracted).length > 1 ? `${m} ` : ""}${r.extracted[m] ?? "no answer"} ${r.correct[m] ? "correct" : "wrong"}`,
    )
    .join(", ");
}

async function perplexity(argv: string[]): Promise<void> {
  const a = parse(argv, PERPLEXITY_FLAGS);
  const limit = limitOf(a.limit);
  const maxLength = integer("--max-length", a.maxLength!, 2);
  const batchSize = integer("--batch-size", a.batchSize!, 1);
  if (a.textField && a.template) throw new UsageError("--template is for instruction data; --text-field scores raw text");
  const fields = parseFields("--fields", a.fields!);
  const cfg = await checkCausal(a.model!, a.adapter, "eval");
  const template = a.template ? await readTemplate("--template", a.template) : undefined;
  const records = first(await readRecords("--data", a.data!), limit);
  const tokenizer = await Tokenizer.fromDir(a.model!);
  const ds = a.textField
    ? buildTextDataset(records, tokenizer, { field: a.textField, maxLength, skipInvalid: a.skipInvalid })
    : buildInstructionDataset(records, tokenizer, { fields, template, maxLength, skipInvalid: a.skipInvalid });
  skippedNote(ds.skipped, a.data!);
  if (ds.examples.length === 0) throw new CliError(`--data ${a.data}: no examples to evaluate`);
  if (ds.truncated) progress(`${ds.truncated} sequence(s) longer than --max-length ${maxLength} were cut`);
  requireLongestFits(ds.examples, cfg, await cliBackend(), batchSize);
  const model = await loadCausal(a.model!, a.adapter);
  const report = await evalPerplexity(model, ds.examples, {
    batchSize,
    padTokenId: padTokenIdOf(tokenizer),
    onBatch: (done, total) => progress(`perplexity ${done}/${total} sequences`),
  });
  if (report.tokens === 0)
    throw new CliError(`--data ${a.data}: no target tokens (every sequence is cut before its response); raise --max-length`);
  if (a.json) {
    const out = {
      task: "perplexity",
      scored: a.textField ? "text" : "targets",
      model: a.model,
      adapter: a.adapter ?? null,
      data: a.data,
      examples: report.examples,
      skipped: ds.skipped.length,
      truncated: ds.truncated,
      tokens: report.tokens,
      loss: report.loss,
      perplexity: report.perplexity,
      seconds: round(report.seconds),
    };
    console.log(JSON.stringify(out));
    return;
  }
  console.log(
    `perplexity ${report.perplexity.toFixed(4)} (loss ${report.loss.toFixed(4)} nats/token over ${report.tokens} target tokens ` +
      `of ${report.examples} sequences) in ${report.seconds.toFixed(1)} s`,
  );
}
