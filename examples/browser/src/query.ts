// The page's run settings (steps, lr, preset, ...) as the URL query and the form give them: pure, with no
// import, so the page's own bundle stays small (the trainer lives in the worker's bundle).

/** The problem generated before and after training: a trigger subtraction the pre-trained model answers by adding. */
export const PROBE_QUESTION = "Sam has 17 marbles. He gives away 5. How many marbles does Sam have now?";

export const PRESETS = ["iclr2026", "v5", "pissa", "lora"] as const;
export type PagePreset = (typeof PRESETS)[number];
/** all: the demo's 1,000 clean rows; flaw: only the 25 trigger subtractions, where the pre-trained model is wrong. */
export const DATA_SETS = ["flaw", "all"] as const;
export type DataSet = (typeof DATA_SETS)[number];

export interface RunSettings {
  steps: number;
  lr: number;
  preset: PagePreset;
  batch: number;
  r: number;
  seed: number;
  data: DataSet;
  /** The diversity term's top-k entropy (0: the full vocabulary; null: the preset's, 20 for iclr2026). */
  topk: number | null;
}

export const DEFAULT_RUN: RunSettings = { steps: 40, lr: 5e-4, preset: "iclr2026", batch: 4, r: 8, seed: 42, data: "flaw", topk: null };

const positiveInt = (v: string | null, fallback: number, max: number): number => {
  const n = Number(v);
  return v !== null && Number.isInteger(n) && n >= 1 && n <= max ? n : fallback;
};

/** Settings from a query string (?steps=8&lr=1e-3&preset=v5&batch=4&r=8&seed=1&data=all&topk=8); bad or missing: the default. */
export function runFromQuery(search: string): RunSettings {
  const q = new URLSearchParams(search);
  const lr = Number(q.get("lr"));
  const preset = q.get("preset") as PagePreset;
  const data = q.get("data") as DataSet;
  return {
    steps: positiveInt(q.get("steps"), DEFAULT_RUN.steps, 100_000),
    lr: q.has("lr") && Number.isFinite(lr) && lr > 0 ? lr : DEFAULT_RUN.lr,
    preset: PRESETS.includes(preset) ? preset : DEFAULT_RUN.preset,
    batch: positiveInt(q.get("batch"), DEFAULT_RUN.batch, 64),
    r: positiveInt(q.get("r"), DEFAULT_RUN.r, 64),
    seed: q.has("seed") && /^\d+$/.test(q.get("seed")!) ? Number(q.get("seed")) : DEFAULT_RUN.seed,
    data: DATA_SETS.includes(data) ? data : DEFAULT_RUN.data,
    topk: /^\d+$/.test(q.get("topk") ?? "") && Number(q.get("topk")) <= 64 ? Number(q.get("topk")) : DEFAULT_RUN.topk,
  };
}

export function queryOf(run: RunSettings): string {
  const entries = Object.entries(run).filter(([, v]) => v !== null);
  return `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)])).toString()}`;
}
