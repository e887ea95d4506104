// `balora merge`: fold a peft adapter into its base model and write an HF model directory that
// @balora/models and transformers load (16-bit bases are rounded once after an f32 merge).
import { mergeAndUnload } from "@balora/lora";
import { parse } from "./args.js";
import type { Command } from "./main.js";
import { buildDirAtomically, loadForCli, writeModelDir } from "./model.js";

export const mergeCommand: Command = {
  summary: "merge an adapter into its base model and write an HF model directory",
  usage: "balora merge --model DIR --adapter DIR --out DIR",
  async run(argv) {
    const a = parse(argv, {
      model: { type: "string", required: true },
      adapter: { type: "string", required: true },
      out: { type: "string", required: true },
    });
    const { model } = await loadForCli(a.model!, a.adapter);
    mergeAndUnload(model);
    await buildDirAtomically(a.out!, (tmp) => writeModelDir(model, a.model!, tmp));
    console.log(`wrote the merged model to ${a.out}`);
  },
};
