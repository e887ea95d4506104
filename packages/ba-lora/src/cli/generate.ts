// `balora generate`: continues a text prompt with a causal LM (greedy by default, or temperature /
// top-p sampling with a seed), printing the new text to stdout.
import { CausalLM, generate, Tokenizer } from "@balora/models";
import { CliError, type FlagSpecs, integer, MAX_SEED, parse, UsageError } from "./args.js";
import type { Command } from "./main.js";
import { ADAPTER_FLAG, checkAdapterDir, cliBackend, loadForCli, MODEL_FLAG, readModelConfig, requireTokensFit } from "./model.js";

const USAGE =
  "balora generate --model DIR [--adapter DIR] --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-p P] [--seed S] [--no-cache]";

const FLAGS = {
  model: MODEL_FLAG,
  adapter: ADAPTER_FLAG,
  prompt: { type: "string", value: "TEXT", required: true, help: "the text to continue (tokenized with the model's tokenizer.json)" },
  maxNewTokens: { type: "number", default: 64, help: "most new tokens; generation also stops at an end-of-sequence token" },
  temperature: { type: "number", value: "T", default: 0, help: "0 is greedy; > 0 samples from softmax(logits / T)" },
  topP: {
    type: "number",
    value: "P",
    default: 1,
    help: "nucleus sampling: keep the likeliest tokens whose probabilities add up to P, in (0, 1]",
  },
  seed: { type: "number", value: "S", default: 0, help: `seed of the sampler, an integer in [0, ${MAX_SEED}]` },
  noCache: { type: "boolean", help: "recompute every position at each step instead of keeping keys and values (slower, same result)" },
} satisfies FlagSpecs;

export const generateCommand: Command = {
  summary: "continue a prompt (greedy, or sampled with --temperature/--top-p/--seed)",
  usage: USAGE,
  flags: FLAGS,
  details:
    "Prints the new text (special tokens skipped) and a newline on stdout. Past the model's max_position_embeddings " +
    "it warns on stderr and goes on, as transformers does.",
  async run(argv) {
    const a = parse(argv, FLAGS);
    const maxNewTokens = integer("--max-new-tokens", a.maxNewTokens!);
    if (a.temperature! < 0) throw new UsageError(`--temperature must be >= 0, got ${a.temperature}`);
    if (!(a.topP! > 0 && a.topP! <= 1)) throw new UsageError(`--top-p must be in (0, 1], got ${a.topP}`);
    const seed = integer("--seed", a.seed!, 0, MAX_SEED);
    const cfg = await readModelConfig(a.model!);
    if (cfg.head !== "causal-lm")
      throw new CliError(`--model ${a.model}: ${cfg.architecture} is a classifier; generate needs a *ForCausalLM model`);
    if (a.adapter) await checkAdapterDir(a.adapter);
    const tokenizer = await Tokenizer.fromDir(a.model!);
    const prompt = tokenizer.encode(a.prompt!);
    if (prompt.length === 0) throw new CliError(`--prompt: the prompt has no tokens; give some text`);
    if (maxNewTokens === 0) {
      process.stdout.write("\n");
      return;
    }
    const backend = await cliBackend();
    if (a.noCache)
      requireTokensFit(
        `--no-cache: the prompt plus --max-new-tokens`,
        prompt.length + maxNewTokens,
        cfg,
        backend,
        1,
        "lower --max-new-tokens or drop --no-cache",
      );
    else requireTokensFit("the prompt", prompt.length, cfg, backend, 1, "shorten --prompt");
    const { model } = await loadForCli(a.model!, a.adapter);
    if (!(model instanceof CausalLM)) throw new CliError(`--model ${a.model}: ${model.config.architecture} is not a *ForCausalLM model`);
    const out = await generate(model, prompt, {
      maxNewTokens,
      temperature: a.temperature,
      topP: a.topP,
      seed,
      eosTokenIds: tokenizer.eosTokenIds.length ? tokenizer.eosTokenIds : undefined,
      useCache: !a.noCache,
      onWarning: (m) => console.error(`balora ${m.replace(/^generate: /, "generate: warning: ")}`),
    });
    const text = out.length ? tokenizer.decode(out, { skipSpecialTokens: true }) : "";
    process.stdout.write(`${text}\n`);
  },
};
