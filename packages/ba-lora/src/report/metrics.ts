// A run as the report sees it: the trainer's metrics.jsonl (one object per optimizer step) and its
// training_config.json, parsed from text in memory; a last line cut short by a killed run is tolerated.
import { DataError } from "../data/records.js";

/** One optimizer step of metrics.jsonl (DESIGN.md §4); `eval_*` keys appear on the steps that evaluated. */
export interface StepMetrics {
  step: number;
  epoch?: number;
  loss?: number;
  task_loss?: number;
  consistency?: number;
  diversity?: number;
  svd?: number;
  lambda1?: number;
  lambda2?: number;
  lambda3?: number;
  lr?: number;
  grad_norm?: number;
  tokens?: number;
  tokens_per_s?: number;
  elapsed_s?: number;
  [key: string]: number | undefined;
}

/** What `renderReport` draws: a run's name, its effective settings and its per-step metrics. */
export interface ReportRun {
  name: string;
  config: Record<string, unknown>;
  metrics: StepMetrics[];
}

/**
 * Parses metrics.jsonl: one JSON object per line with a numeric `step`; other numeric values are kept
 * (null, as JSON writes NaN and Infinity, becomes NaN). An unreadable *last* line (a run killed
 * while writing it) is dropped with a warning; anywhere else it is an error naming file and line.
 */
export function parseMetrics(text: string, file: string): { metrics: StepMetrics[]; warnings: string[] } {
  const lines = text.split("\n");
  while (lines.length && lines[lines.length - 1].trim() === "") lines.pop();
  const metrics: StepMetrics[] = [];
  const warnings: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === "") continue;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      if (i === lines.length - 1) {
        warnings.push(`${file}:${i + 1}: the last line is not complete JSON (a run stopped while writing it?); left out`);
        continue;
      }
      throw new DataError(`${file}:${i + 1}: invalid JSON (${(e as Error).message}); metrics.jsonl has one JSON object per line`);
    }
    if (!v || typeof v !== "object" || Array.isArray(v))
      throw new DataError(`${file}:${i + 1}: expected a JSON object of one step's metrics`);
    const row = v as Record<string, unknown>;
    if (typeof row.step !== "number" || !Number.isFinite(row.step))
      throw new DataError(`${file}:${i + 1}: no numeric 'step' (fields: ${Object.keys(row).join(", ") || "none"})`);
    const m: StepMetrics = { step: row.step };
    for (const [k, x] of Object.entries(row)) {
      if (k === "step") continue;
      if (typeof x === "number") m[k] = x;
      else if (x === null) m[k] = Number.NaN;
    }
    metrics.push(m);
  }
  return { metrics, warnings };
}

/** Parses training_config.json (a JSON object). */
export function parseConfig(text: string, file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new DataError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new DataError(`${file}: expected a JSON object of settings`);
  return v as Record<string, unknown>;
}
