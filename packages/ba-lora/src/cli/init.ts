// `balora init`: initialise an adapter for a model. PiSSA writes the residual model (W − s·B0·A0) to
// --out and the initial adapter to --out/pissa_init (GraphPKU/PiSSA's layout); LoRA writes only the adapter.
import { join } from "node:path";
import { injectAdapter, saveAdapter, trainableReport, unloadAdapters } from "@balora/lora";
import { integer, parse, UsageError } from "./args.js";
import type { Command } from "./main.js";
import { buildDirAtomically, loadForCli, writeModelDir } from "./model.js";

const USAGE =
  "balora init --model DIR --init pissa|pissa_niter_N|lora --r R --alpha A [--target q_proj,v_proj|all-linear] [--seed S] --out DIR";

export const initCommand: Command = {
  summary: "initialise a LoRA or PiSSA adapter (PiSSA also writes the residual model)",
  usage: USAGE,
  async run(argv) {
    const a = parse(argv, {
      model: { type: "string", required: true },
      init: { type: "string", required: true },
      r: { type: "number", required: true },
      alpha: { type: "number", required: true },
      target: { type: "string", default: "all-linear" },
      seed: { type: "number", default: 0 },
      out: { type: "string", required: true },
    });
    const init = a.init!;
    if (init !== "lora" && !/^pissa(_niter_\d+)?$/.test(init))
      throw new UsageError(`--init must be pissa, pissa_niter_<N> or lora, got '${init}'`);
    const r = integer("--r", a.r!, 1);
    const target =
      a.target === "all-linear"
        ? "all-linear"
        : a
            .target!.split(",")
            .map((t) => t.trim())
            .filter(Boolean);
    const { model } = await loadForCli(a.model!);
    injectAdapter(
      model,
      {
        r,
        lora_alpha: a.alpha,
        target_modules: target,
        init_lora_weights: init === "lora" ? true : (init as "pissa"),
        base_model_name_or_path: a.model!,
      },
      { seed: integer("--seed", a.seed!) },
    );
    const report = trainableReport(model).line;
    await buildDirAtomically(a.out!, async (tmp) => {
      if (init === "lora") {
        await saveAdapter(model, tmp);
        return;
      }
      // The initial adapter, then the residual base without it.
      await saveAdapter(model, join(tmp, "pissa_init"));
      unloadAdapters(model);
      await writeModelDir(model, a.model!, tmp);
    });
    console.log(`${report}\nwrote ${init === "lora" ? "the adapter" : "the residual model and pissa_init/"} to ${a.out}`);
  },
};
