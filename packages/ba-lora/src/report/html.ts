// The training report: one self-contained HTML page (inline CSS and SVG, no script, no network) with
// the curves of one or several runs overlaid, their settings side by side and their final/eval metrics.
import type { ReportRun, StepMetrics } from "./metrics.js";
import { colorOf, escapeHtml as esc, fmt, lineChart, type Series } from "./svg.js";

/** The charts, in order: [title, metric keys (the second drawn dashed)]. `eval_*` keys get charts of their own. */
export const REPORT_CHARTS: readonly [string, readonly string[]][] = [
  ["loss (solid) and task loss (dashed)", ["loss", "task_loss"]],
  ["consistency", ["consistency"]],
  ["diversity", ["diversity"]],
  ["svd", ["svd"]],
  ["λ1 (consistency weight)", ["lambda1"]],
  ["λ2 (diversity weight)", ["lambda2"]],
  ["λ3 (svd weight)", ["lambda3"]],
  ["learning rate", ["lr"]],
  ["grad norm (before clipping)", ["grad_norm"]],
  ["tokens per second", ["tokens_per_s"]],
];

const finiteIn = (runs: ReportRun[], key: string): boolean => runs.some((r) => r.metrics.some((m) => Number.isFinite(m[key])));

function seriesOf(runs: ReportRun[], keys: readonly string[]): Series[] {
  return runs.flatMap((r, run) =>
    keys
      .map((key, k) => ({
        run,
        label: `${r.name}: ${key}`,
        dashed: k > 0,
        points: r.metrics.filter((m) => m[key] !== undefined).map((m): [number, number] => [m.step, m[key] as number]),
      }))
      .filter((s) => s.points.some(([, y]) => Number.isFinite(y))),
  );
}

const evalKeys = (runs: ReportRun[]): string[] =>
  [...new Set(runs.flatMap((r) => r.metrics.flatMap((m) => Object.keys(m).filter((k) => k.startsWith("eval_")))))].sort();

/** Eval values that are counts or timings: in the table, not charted. */
const UNCHARTED_EVAL = new Set(["eval_examples", "eval_runtime"]);

/** An evaluation row of its own (balora train's `--eval-data` rows): eval_* values and no training loss. */
export const isEvalRow = (m: StepMetrics): boolean => m.loss === undefined && Object.keys(m).some((k) => k.startsWith("eval_"));

/** The optimizer-step rows of a run (eval rows left out). */
const stepRows = (r: ReportRun): StepMetrics[] => r.metrics.filter((m) => !isEvalRow(m));

/** Nested settings as dotted keys ("lora.r"), values as short text. */
function flatten(obj: Record<string, unknown>, prefix = "", out: Record<string, string> = {}): Record<string, string> {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v as Record<string, unknown>, key, out);
    else out[key] = typeof v === "string" ? v : (JSON.stringify(v) ?? "null");
  }
  return out;
}

const swatch = (run: number): string => `<span class="swatch" style="background:${colorOf(run)}"></span>`;

function legend(runs: ReportRun[]): string {
  return `<ul class="legend">${runs.map((r, i) => `<li>${swatch(i)}${esc(r.name)}</li>`).join("")}</ul>`;
}

/** The last finite value of `key` in a run. */
const last = (metrics: StepMetrics[], key: string): number | undefined => {
  for (let i = metrics.length - 1; i >= 0; i--) if (Number.isFinite(metrics[i][key])) return metrics[i][key];
  return undefined;
};

function configTable(runs: ReportRun[]): string {
  const flat = runs.map((r) => flatten(r.config));
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
  if (keys.length === 0) return "<p>No training_config.json settings.</p>";
  const head = `<tr><th>setting</th>${runs.map((r, i) => `<th>${swatch(i)}${esc(r.name)}</th>`).join("")}</tr>`;
  const rows = keys.map((k) => {
    const vals = flat.map((f) => f[k]);
    const differs = runs.length > 1 && new Set(vals).size > 1;
    const cells = vals.map((v) => `<td>${v === undefined ? "—" : esc(v)}</td>`).join("");
    return `<tr${differs ? ' class="differs"' : ""}><td>${esc(k)}</td>${cells}</tr>`;
  });
  return `<table class="config">${head}${rows.join("")}</table>`;
}

function finalTable(runs: ReportRun[]): string {
  const keys = ["step", "epoch", "loss", "task_loss", "consistency", "diversity", "svd", "lr", "grad_norm", "tokens", "elapsed_s"];
  const evals = evalKeys(runs);
  const rows: [string, (r: ReportRun) => string][] = [
    ["optimizer steps logged", (r) => String(stepRows(r).length)],
    ...keys.map((k): [string, (r: ReportRun) => string] => [`final ${k}`, (r) => fmtOpt(last(r.metrics, k))]),
    ["mean tokens per second", (r) => fmtOpt(mean(r.metrics.map((m) => m.tokens_per_s)))],
    ["total tokens", (r) => fmtOpt(sum(r.metrics.map((m) => m.tokens)))],
    ["non-finite loss steps", (r) => String(r.metrics.filter((m) => m.loss !== undefined && !Number.isFinite(m.loss)).length)],
    ...evals.map((k): [string, (r: ReportRun) => string] => [`last ${k}`, (r) => fmtOpt(last(r.metrics, k))]),
  ];
  const head = `<tr><th>metric</th>${runs.map((r, i) => `<th>${swatch(i)}${esc(r.name)}</th>`).join("")}</tr>`;
  const body = rows.map(([name, f]) => `<tr><td>${esc(name)}</td>${runs.map((r) => `<td>${esc(f(r))}</td>`).join("")}</tr>`);
  return `<table class="final">${head}${body.join("")}</table>`;
}

const fmtOpt = (v: number | undefined): string => (v === undefined ? "—" : fmt(v));
const finiteValues = (vs: (number | undefined)[]): number[] => vs.filter((v): v is number => Number.isFinite(v));
const sum = (vs: (number | undefined)[]): number | undefined => {
  const f = finiteValues(vs);
  return f.length ? f.reduce((a, b) => a + b, 0) : undefined;
};
const mean = (vs: (number | undefined)[]): number | undefined => {
  const f = finiteValues(vs);
  return f.length ? f.reduce((a, b) => a + b, 0) / f.length : undefined;
};

const STYLE = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#222;margin:24px;max-width:1400px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 8px}
.legend{list-style:none;padding:0;margin:8px 0;display:flex;flex-wrap:wrap;gap:6px 18px}
.legend li{overflow-wrap:anywhere}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
figure{margin:0;border:1px solid #e3e3e3;border-radius:6px;padding:6px;background:#fff}
svg.chart{width:100%;height:auto;display:block}
svg .title{font-size:13px;font-weight:600;fill:#222}svg .tick{font-size:11px;fill:#555}svg .axis{font-size:11px;fill:#555}
svg .plot{fill:#fafafa;stroke:#bbb}svg .grid{stroke:#e6e6e6}svg .curve{fill:none;stroke-width:1.6}
table{border-collapse:collapse;font-size:13px;margin:4px 0;max-width:100%}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f3f3f3}tr.differs td{background:#fff7d6}
.scroll{overflow-x:auto}.note{color:#666}
`;

/**
 * The report of one or several runs as one HTML page: a chart per metric with every run overlaid,
 * the settings side by side (differences highlighted), the final and evaluation metrics.
 */
export function renderReport(runs: ReportRun[], opts: { title?: string } = {}): string {
  const title = opts.title ?? `balora report: ${runs.map((r) => r.name).join(", ")}`;
  const charts: string[] = [];
  const missing: string[] = [];
  const evals = evalKeys(runs);
  const specs: [string, readonly string[]][] = [
    ...REPORT_CHARTS,
    ...evals.filter((k) => !UNCHARTED_EVAL.has(k)).map((k): [string, string[]] => [k, [k]]),
  ];
  for (const [name, keys] of specs) {
    if (!keys.some((k) => finiteIn(runs, k))) {
      missing.push(keys.join(", "));
      continue;
    }
    charts.push(`<figure>${lineChart(name, seriesOf(runs, keys))}</figure>`);
  }
  const steps = runs
    .map((r) => {
      const evals = r.metrics.length - stepRows(r).length;
      return `${esc(r.name)}: ${stepRows(r).length} steps${evals ? `, ${evals} evaluations` : ""}`;
    })
    .join("; ");
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><style>${STYLE}</style></head><body>
<h1>${esc(title)}</h1>
${legend(runs)}
<p class="note">${steps}. Curves over optimizer steps; a gap is a step whose value was missing or not finite.</p>
<h2>Curves</h2>
<div class="charts">${charts.join("\n")}</div>
${missing.length ? `<p class="note">Not recorded by any run: ${esc(missing.join("; "))}.</p>` : ""}
<h2>Final and evaluation metrics</h2>
<div class="scroll">${finalTable(runs)}</div>
<h2>Settings (training_config.json)</h2>
<div class="scroll">${configTable(runs)}</div>
</body></html>
`;
}
