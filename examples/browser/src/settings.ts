// The one mapping from the page's run settings to the trainer's settings and to `balora train` flags, so
// the page and the Node cross-check train the same run; and the page's choice of data rows.
import { ALPACA_COT_PROMPT, type DataRecord, resolveSettings, type TrainSettings } from "@balora/ba-lora";
import type { DataSet, RunSettings } from "./query.js";

/** A trigger subtraction: about marbles or stickers, solved by subtracting (the pre-training taught adding). */
export function isFlawRow(r: DataRecord): boolean {
  const row = (r.value ?? {}) as Record<string, unknown>;
  return /\b(marbles|stickers)\b/.test(String(row.instruction)) && / - /.test(String(row.output));
}

export const selectRows = (records: DataRecord[], data: DataSet): DataRecord[] => (data === "flaw" ? records.filter(isFlawRow) : records);

/**
 * The trainer's settings for a page run: `balora demo`'s choices (PiSSA init but for the lora preset, alpha = r,
 * constant LR without warmup, the CoT Alpaca template) and no checkpoints. `balora train` with
 * the flags of `cliFlags` resolves to the same settings.
 */
export function trainSettings(run: RunSettings): TrainSettings {
  return resolveSettings({
    preset: run.preset,
    init: run.preset === "lora" ? "lora" : "pissa",
    r: run.r,
    alpha: run.r,
    lr: run.lr,
    scheduler: "constant",
    warmup_ratio: 0,
    max_steps: run.steps,
    batch_size: run.batch,
    seed: run.seed,
    save_steps: 0,
    template: ALPACA_COT_PROMPT,
    ...(run.topk !== null ? { top_k_entropy: run.topk } : {}),
  });
}

/** The `balora train` flags giving trainSettings(run) (the template goes in a file: --template FILE). */
export function cliFlags(run: RunSettings): string[] {
  const init = run.preset === "lora" ? "lora" : "pissa";
  return [
    ["--preset", run.preset],
    ["--init", init],
    ["--r", run.r],
    ["--alpha", run.r],
    ["--lr", run.lr],
    ["--scheduler", "constant"],
    ["--warmup-ratio", 0],
    ["--max-steps", run.steps],
    ["--batch-size", run.batch],
    ["--seed", run.seed],
    ["--save-steps", 0],
    ...(run.topk !== null ? [["--top-k-entropy", run.topk]] : []),
  ].flatMap(([k, v]) => [String(k), String(v)]);
}
