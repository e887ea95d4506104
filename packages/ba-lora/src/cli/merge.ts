// `balora merge`: fold a peft adapter into its base model and write an HF model directory that
// @balora/models and transformers load (16-bit bases are rounded once after an f32 merge).
import { mergeAndUnload } from "@balora/lora";
import { type FlagSpecs, parse } from "./args.js";
import type { Command } from "./main.js";
import { ADAPTER_FLAG, checkAdapterDir, loadForCli, MODEL_FLAG, readModelConfig, writeModelDir } from "./model.js";
import { OVERWRITE_FLAG, planOutput, writeDirOutput } from "./output.js";
import { progress } from "./progress.js";

const FLAGS = {
  model: MODEL_FLAG,
  adapter: { ...ADAPTER_FLAG, required: true },
  out: { type: "string", value: "DIR", required: true, help: "directory to write the merged model to (must not exist unless --overwrite)" },
  overwrite: OVERWRITE_FLAG,
  quiet: { type: "boolean", help: "no progress lines on stderr" },
} satisfies FlagSpecs;

export const mergeCommand: Command = {
  summary: "merge an adapter into its base model and write an HF model directory",
  usage: "balora merge --model DIR --adapter DIR --out DIR [--overwrite] [--quiet]",
  flags: FLAGS,
  async run(argv) {
    const a = parse(argv, FLAGS);
    await readModelConfig(a.model!);
    await checkAdapterDir(a.adapter!);
    const out = await planOutput(
      { flag: "--out", path: a.out!, kind: "directory" },
      {
        overwrite: a.overwrite,
        inputs: [
          { flag: "--model", path: a.model },
          { flag: "--adapter", path: a.adapter },
        ],
      },
    );
    progress(`loading ${a.model} with the adapter ${a.adapter}`);
    const { model } = await loadForCli(a.model!, a.adapter);
    mergeAndUnload(model);
    progress(`writing the merged model to ${a.out}`);
    await writeDirOutput(out, (tmp) => writeModelDir(model, a.model!, tmp));
    console.log(`wrote the merged model to ${a.out}`);
  },
};
