// `balora init`: initialise an adapter for a model. PiSSA writes the residual model (W − s·B0·A0) to
// --out and the initial adapter to --out/pissa_init (GraphPKU/PiSSA's layout); LoRA writes only the adapter.
import { join } from "node:path";
import { injectAdapter, isTarget, loraConfig, saveAdapter, trainableReport, unloadAdapters } from "@balora/lora";
import { expectedWeights, type ModelConfig } from "@balora/models";
import { CliError, type FlagSpecs, integer, MAX_SEED, parse, UsageError } from "./args.js";
import type { Command } from "./main.js";
import { loadForCli, MODEL_FLAG, readModelConfig, writeModelDir } from "./model.js";
import { OVERWRITE_FLAG, planOutput, writeDirOutput } from "./output.js";
import { progress } from "./progress.js";
import { slowLayer } from "./test-hooks.js";

const USAGE =
  "balora init --model DIR --init pissa|pissa_niter_N|lora --r R --alpha A [--target q_proj,v_proj|all-linear] [--seed S] --out DIR " +
  "[--overwrite] [--quiet]";

const FLAGS = {
  model: MODEL_FLAG,
  init: {
    type: "string",
    value: "pissa|pissa_niter_N|lora",
    required: true,
    help: "exact PiSSA (SVD), fast PiSSA (N subspace iterations) or LoRA",
  },
  r: { type: "number", value: "R", required: true, help: "adapter rank, an integer from 1 to each target's smaller dimension" },
  alpha: { type: "number", value: "A", required: true, help: "lora_alpha (> 0); the adapter's output is scaled by A / R" },
  target: { type: "string", value: "LIST", default: "all-linear", help: "comma-separated layer names (q_proj,v_proj) or all-linear" },
  seed: { type: "number", value: "S", default: 0, help: `seed of random initialisations, an integer in [0, ${MAX_SEED}]` },
  out: { type: "string", value: "DIR", required: true, help: "directory to write (must not exist unless --overwrite)" },
  overwrite: OVERWRITE_FLAG,
  quiet: { type: "boolean", help: "no progress lines on stderr" },
} satisfies FlagSpecs;

type Target = string[] | "all-linear";

/** The Linear layers of a config (from its weight names, without loading weights) that `target` selects. */
function selectedLinears(cfg: ModelConfig, target: Target): { path: string; shape: number[] }[] {
  const linears = [...expectedWeights(cfg)]
    .filter(([name, shape]) => name.endsWith(".weight") && shape.length === 2 && !name.endsWith("embed_tokens.weight"))
    .map(([name, shape]) => ({ path: name.slice(0, -".weight".length), shape }));
  const c = loraConfig({ target_modules: target });
  if (target === "all-linear") return linears.filter(({ path }) => path.split(".").pop() !== "lm_head");
  return linears.filter(({ path }) => isTarget(c, target, path));
}

export const initCommand: Command = {
  summary: "initialise a LoRA or PiSSA adapter (PiSSA also writes the residual model)",
  usage: USAGE,
  flags: FLAGS,
  details: "PiSSA writes the residual model to --out and the initial adapter to --out/pissa_init; LoRA writes only the adapter.",
  async run(argv) {
    const a = parse(argv, FLAGS);
    // Every argument and path first, then the work.
    const init = a.init!;
    if (init !== "lora" && !/^pissa(_niter_[1-9]\d*)?$/.test(init))
      throw new UsageError(`--init must be pissa, pissa_niter_<N> (N >= 1) or lora, got '${init}'`);
    const r = integer("--r", a.r!, 1);
    if (!(a.alpha! > 0)) throw new UsageError(`--alpha must be > 0, got ${a.alpha}`);
    const seed = integer("--seed", a.seed!, 0, MAX_SEED);
    const target: Target =
      a.target === "all-linear"
        ? "all-linear"
        : a
            .target!.split(",")
            .map((t) => t.trim())
            .filter(Boolean);
    if (target.length === 0) throw new UsageError(`--target must name at least one layer, got '${a.target}'`);
    const cfg = await readModelConfig(a.model!);
    const out = await planOutput(
      { flag: "--out", path: a.out!, kind: "directory" },
      { overwrite: a.overwrite, inputs: [{ flag: "--model", path: a.model }] },
    );
    const layers = selectedLinears(cfg, target);
    if (layers.length === 0) {
      const ends = [...new Set(selectedLinears(cfg, "all-linear").map(({ path }) => path.split(".").pop()))].join(", ");
      throw new CliError(`--target ${a.target} matches no Linear layer of --model ${a.model} (its Linear layers end in: ${ends})`);
    }
    const pissa = init !== "lora";
    // B·A of an [out, in] weight has rank <= min(out, in): a larger R only costs memory (and PiSSA cannot take it).
    const smallest = layers.reduce((s, l) => (Math.min(...l.shape) < Math.min(...s.shape) ? l : s));
    const most = Math.min(...smallest.shape);
    if (r > most)
      throw new CliError(
        `--r ${r} is more than ${smallest.path}'s smaller dimension (${most} of [${smallest.shape.join(", ")}]); ` +
          `${pissa ? "PiSSA takes the top R singular vectors" : "a rank-R update cannot exceed it"}, ` +
          `so --r must be <= ${most} for these targets`,
      );

    const { model } = await loadForCli(a.model!);
    const config = {
      r,
      lora_alpha: a.alpha,
      target_modules: target,
      init_lora_weights: init === "lora" ? true : (init as "pissa"),
      base_model_name_or_path: a.model!,
    };
    const onLayer = (path: string, i: number, total: number) => {
      progress(`${init} ${i}/${total} ${path}`);
      slowLayer();
    };
    const injected = injectAdapter(model, config, { seed, ...(pissa ? { onLayer } : {}) });
    const report = trainableReport(model).line;
    if (pissa) progress(`writing the residual model and pissa_init/ (${injected.targets.length} layers) to ${a.out}`);
    await writeDirOutput(out, async (tmp) => {
      if (!pissa) {
        await saveAdapter(model, tmp);
        return;
      }
      // The initial adapter, then the residual base without it.
      await saveAdapter(model, join(tmp, "pissa_init"));
      unloadAdapters(model);
      await writeModelDir(model, a.model!, tmp);
    });
    console.log(`${report}\nwrote ${pissa ? "the residual model and pissa_init/" : "the adapter"} to ${a.out}`);
  },
};
