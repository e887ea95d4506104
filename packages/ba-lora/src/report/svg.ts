// One line chart as inline SVG (no script, no external resources): axes with round ticks, one path
// per series over optimizer steps, gaps where a value is missing or not finite.
const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
export { esc as escapeHtml };

export interface Series {
  /** Index of the run (its colour). */
  run: number;
  /** [step, value] pairs in step order; NaN values break the line. */
  points: [number, number][];
  dashed?: boolean;
  label: string;
}

/** Round tick values covering [lo, hi] (about `n` of them). */
export function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, n - 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return ticks;
}

/** A number for an axis or a table: 4 significant digits, exponent notation when very small or large. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2).replace("e+", "e");
  return String(Number(v.toPrecision(4)));
}

export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
export const colorOf = (run: number): string => PALETTE[run % PALETTE.length];

export const CHART = { width: 420, height: 240, left: 58, right: 14, top: 30, bottom: 36 } as const;

/** The SVG of one chart. Series without a finite value are left out; the caller skips empty charts. */
export function lineChart(title: string, series: Series[]): string {
  const { width: W, height: H, left: L, right: R, top: Tp, bottom: B } = CHART;
  const finite = series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const xs = finite.map(([x]) => x);
  const ys = finite.map(([, y]) => y);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) {
    const pad = Math.abs(y0) * 0.1 || 1;
    [y0, y1] = [y0 - pad, y1 + pad];
  }
  const yt = niceTicks(y0, y1);
  const xt = niceTicks(x0, x1).filter((t) => Number.isInteger(t) || x1 - x0 < 10);
  [y0, y1] = [Math.min(y0, yt[0]), Math.max(y1, yt[yt.length - 1])];
  const pw = W - L - R;
  const ph = H - Tp - B;
  const px = (x: number) => L + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number) => Tp + ph - ((y - y0) / (y1 - y0)) * ph;
  const n = (v: number) => v.toFixed(1);
  const parts: string[] = [];
  parts.push(`<text class="title" x="${L}" y="18">${esc(title)}</text>`);
  parts.push(`<rect class="plot" x="${L}" y="${Tp}" width="${pw}" height="${ph}"/>`);
  for (const t of yt) {
    const y = n(py(t));
    parts.push(`<line class="grid" x1="${L}" x2="${L + pw}" y1="${y}" y2="${y}"/>`);
    parts.push(`<text class="tick y" x="${L - 6}" y="${y}" dy="0.32em" text-anchor="end">${esc(fmt(t))}</text>`);
  }
  for (const t of xt) {
    const x = n(px(t));
    parts.push(`<line class="grid" x1="${x}" x2="${x}" y1="${Tp}" y2="${Tp + ph}"/>`);
    parts.push(`<text class="tick x" x="${x}" y="${Tp + ph + 15}" text-anchor="middle">${esc(fmt(t))}</text>`);
  }
  parts.push(`<text class="axis" x="${L + pw / 2}" y="${H - 4}" text-anchor="middle">step</text>`);
  for (const s of series) {
    let d = "";
    let pen = false;
    const singles: [number, number][] = [];
    s.points.forEach(([x, y], i) => {
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${n(px(x))},${n(py(y))}`;
      const prevOk = i > 0 && Number.isFinite(s.points[i - 1][1]);
      const nextOk = i + 1 < s.points.length && Number.isFinite(s.points[i + 1][1]);
      if (!prevOk && !nextOk) singles.push([x, y]);
      pen = true;
    });
    if (!d) continue;
    const attrs = `data-run="${s.run}" stroke="${colorOf(s.run)}"${s.dashed ? ' stroke-dasharray="5 3"' : ""}`;
    parts.push(`<path class="curve" ${attrs} d="${d}"><title>${esc(s.label)}</title></path>`);
    for (const [x, y] of singles)
      parts.push(`<circle class="point" data-run="${s.run}" fill="${colorOf(s.run)}" cx="${n(px(x))}" cy="${n(py(y))}" r="2.5"/>`);
  }
  const open = `<svg class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">`;
  return `${open}${parts.join("")}</svg>`;
}
