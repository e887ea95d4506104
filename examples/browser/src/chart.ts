// A live line chart as plain SVG (no library): one series per chart, redrawn from its points on each
// step, with the classes the render test measures (svg.chart, rect.plot, path.curve).
const NS = "http://www.w3.org/2000/svg";
export const WIDTH = 360;
export const HEIGHT = 180;
const PAD = { left: 62, right: 12, top: 26, bottom: 26 };

const el = <K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] => {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
};

/** Short tick labels: 3 significant digits, exponent form for tiny or huge values. */
export const tick = (v: number): string =>
  v === 0 ? "0" : Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4 ? v.toExponential(2) : Number(v.toPrecision(3)).toString();

export class LiveChart {
  readonly svg: SVGSVGElement;
  private readonly curve: SVGPathElement;
  private readonly labels: { min: SVGTextElement; max: SVGTextElement; steps: SVGTextElement; last: SVGTextElement };
  private readonly points: [number, number][] = [];

  constructor(
    readonly series: string,
    readonly color: string,
    readonly totalSteps: number,
  ) {
    this.svg = el("svg", { class: "chart", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, "data-series": series, role: "img", "aria-label": series });
    const plotW = WIDTH - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    this.svg.append(el("rect", { class: "plot", x: PAD.left, y: PAD.top, width: plotW, height: plotH }));
    const title = el("text", { class: "title", x: PAD.left, y: 16 });
    title.textContent = series;
    const text = (x: number, y: number, anchor: string) => el("text", { class: "tick", x, y, "text-anchor": anchor });
    this.labels = {
      max: text(PAD.left - 6, PAD.top + 4, "end"),
      min: text(PAD.left - 6, PAD.top + plotH, "end"),
      steps: text(PAD.left + plotW, HEIGHT - 8, "end"),
      last: text(PAD.left + plotW, 16, "end"),
    };
    const first = text(PAD.left, HEIGHT - 8, "start");
    first.textContent = "1";
    this.labels.steps.textContent = String(totalSteps);
    this.curve = el("path", { class: "curve", d: "", stroke: color });
    this.svg.append(title, ...Object.values(this.labels), first, this.curve);
  }

  add(step: number, value: number): void {
    if (Number.isFinite(value)) this.points.push([step, value]);
    this.draw();
  }

  private draw(): void {
    const plotW = WIDTH - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const ys = this.points.map(([, v]) => v);
    if (ys.length === 0) return;
    let lo = Math.min(...ys);
    let hi = Math.max(...ys);
    if (hi - lo < 1e-12) {
      const pad = Math.max(Math.abs(hi) * 0.05, 1e-6);
      lo -= pad;
      hi += pad;
    }
    const x = (s: number) => PAD.left + (this.totalSteps > 1 ? ((s - 1) / (this.totalSteps - 1)) * plotW : plotW / 2);
    const y = (v: number) => PAD.top + (1 - (v - lo) / (hi - lo)) * plotH;
    this.curve.setAttribute(
      "d",
      this.points.map(([s, v], i) => `${i ? "L" : "M"}${x(s).toFixed(2)},${y(v).toFixed(2)}`).join(" ") +
        (this.points.length === 1 ? ` h0.01` : ""),
    );
    this.labels.max.textContent = tick(hi);
    this.labels.min.textContent = tick(lo);
    this.labels.last.textContent = `step ${this.points[this.points.length - 1][0]}: ${tick(ys[ys.length - 1])}`;
  }
}
