// `balora generate`: continues a text prompt with a causal LM (greedy by default, or temperature /
// top-p sampling with a seed), printing the new text to stdout.
import { CausalLM, generate, Tokenizer } from "@balora/models";
import { integer, parse, UsageError } from "./args.js";
import type { Command } from "./main.js";
import { loadForCli } from "./model.js";

const USAGE =
  "balora generate --model DIR [--adapter DIR] --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-p P] [--seed S] [--no-cache]";

export const generateCommand: Command = {
  summary: "continue a prompt (greedy, or sampled with --temperature/--top-p/--seed)",
  usage: USAGE,
  async run(argv) {
    const a = parse(argv, {
      model: { type: "string", required: true },
      adapter: { type: "string" },
      prompt: { type: "string", required: true },
      maxNewTokens: { type: "number", default: 64 },
      temperature: { type: "number", default: 0 },
      topP: { type: "number", default: 1 },
      seed: { type: "number", default: 0 },
      noCache: { type: "boolean", default: false },
    });
    const maxNewTokens = integer("--max-new-tokens", a.maxNewTokens!);
    if (a.temperature! < 0) throw new UsageError(`--temperature must be >= 0, got ${a.temperature}`);
    if (!(a.topP! > 0 && a.topP! <= 1)) throw new UsageError(`--top-p must be in (0, 1], got ${a.topP}`);
    const seed = integer("--seed", a.seed!);
    const tokenizer = await Tokenizer.fromDir(a.model!);
    const { model } = await loadForCli(a.model!, a.adapter);
    if (!(model instanceof CausalLM))
      throw new UsageError(`--model ${a.model}: ${model.config.architecture} is a classifier; generate needs a *ForCausalLM model`);
    const prompt = tokenizer.encode(a.prompt!);
    const out = await generate(model, prompt, {
      maxNewTokens,
      temperature: a.temperature,
      topP: a.topP,
      seed,
      eosTokenIds: tokenizer.eosTokenIds.length ? tokenizer.eosTokenIds : undefined,
      useCache: !a.noCache,
    });
    process.stdout.write(`${tokenizer.decode(out, { skipSpecialTokens: true })}\n`);
  },
};
