// The HTML report as a person sees it: rendered by headless Chromium (Debian's /usr/bin/chromium via
// playwright-core, never a downloaded browser), checked on the layout and on the screenshot's pixels.
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { describe, expect, it } from "vitest";
import { decodePng } from "../../../scripts/lib/png.mjs";
import { renderReport } from "../src/index.js";
import { PALETTE } from "../src/report/svg.js";
import { twoRuns } from "./report-fixtures.js";

const CHROMIUM = process.env.BALORA_CHROMIUM ?? "/usr/bin/chromium";
const why = existsSync(CHROMIUM)
  ? null
  : `no Chromium at ${CHROMIUM}: install Debian's chromium (npm test's set-up does, as root on Debian) or set BALORA_CHROMIUM`;
if (why) console.warn(`report-render.test.ts skipped: ${why}`);

const rgbOf = (hex: string): number[] => [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));

describe("the report in headless Chromium", () => {
  it.skipIf(why !== null)(`lays out every chart, curve and table inside the page${why ? ` (skipped: ${why})` : ""}`, async () => {
    const dir = await mkdtemp(join(tmpdir(), "balora-render-"));
    const context = await chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
      ],
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const requests: string[] = [];
      page.on("request", (r) => requests.push(r.url()));
      const file = join(dir, "report.html");
      await writeFile(file, renderReport(twoRuns()));
      await page.goto(`file://${file}`);
      await page.emulateMedia({ media: "screen" });
      expect(requests).toEqual([`file://${file}`]); // nothing else fetched
      const layout = await page.evaluate(() => {
        const box = (e: Element) => e.getBoundingClientRect();
        const charts = [...document.querySelectorAll("svg.chart")].map((svg) => {
          const s = box(svg);
          const plot = box(svg.querySelector("rect.plot")!);
          const curves = [...svg.querySelectorAll("path.curve")].map((p) => {
            const b = box(p);
            return { run: p.getAttribute("data-run"), stroke: getComputedStyle(p).stroke, x: b.x, y: b.y, w: b.width, h: b.height };
          });
          const texts = [...svg.querySelectorAll("text")].map((t) => {
            const b = box(t);
            return {
              text: t.textContent,
              inside: b.left >= s.left - 0.5 && b.right <= s.right + 0.5 && b.top >= s.top - 0.5 && b.bottom <= s.bottom + 0.5,
            };
          });
          return {
            title: svg.getAttribute("aria-label"),
            w: s.width,
            h: s.height,
            x: s.x,
            y: s.y,
            plot: { x: plot.x, y: plot.y, w: plot.width, h: plot.height },
            curves,
            texts,
          };
        });
        const tables = [...document.querySelectorAll("table")].map((t) => ({ w: box(t).width, parent: box(t.parentElement!).width }));
        return { charts, tables, scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth };
      });
      expect(layout.charts).toHaveLength(12);
      for (const c of layout.charts) {
        expect(c.w).toBeGreaterThan(300);
        expect(c.h).toBeGreaterThan(150);
        expect(c.curves.map((p) => p.run).sort()).toEqual(c.title?.startsWith("loss") ? ["0", "0", "1", "1"] : ["0", "1"]);
        for (const p of c.curves) {
          expect(p.w).toBeGreaterThan(0.3 * c.plot.w); // a curve spans most of the steps
          expect(p.x).toBeGreaterThanOrEqual(c.plot.x - 1);
          expect(p.y).toBeGreaterThanOrEqual(c.plot.y - 1);
          expect(p.x + p.w).toBeLessThanOrEqual(c.plot.x + c.plot.w + 1);
          expect(p.y + p.h).toBeLessThanOrEqual(c.plot.y + c.plot.h + 1);
          expect(p.stroke).toBe(`rgb(${rgbOf(PALETTE[Number(p.run)]).join(", ")})`);
        }
        for (const t of c.texts) expect(t, `text "${t.text}" of chart ${c.title} overflows its chart`).toMatchObject({ inside: true });
      }
      // the loss curve is not flat: its box is tall
      const loss = layout.charts.find((c) => c.title?.startsWith("loss"))!;
      expect(Math.max(...loss.curves.map((p) => p.h))).toBeGreaterThan(0.5 * loss.plot.h);
      for (const t of layout.tables) expect(t.w).toBeLessThanOrEqual(t.parent + 1);
      expect(layout.scrollWidth).toBeLessThanOrEqual(layout.innerWidth);

      // the pixels: inside the first chart's plot area both runs' colours are painted
      const shot = await page.screenshot({ fullPage: true, path: process.env.BALORA_REPORT_PNG });
      const { width, rgba } = decodePng(shot);
      const c0 = layout.charts[0];
      const painted = (hex: string) => {
        const [r, g, b] = rgbOf(hex);
        let n = 0;
        for (let y = Math.ceil(c0.plot.y); y < c0.plot.y + c0.plot.h; y++)
          for (let x = Math.ceil(c0.plot.x); x < c0.plot.x + c0.plot.w; x++) {
            const i = (y * width + x) * 4;
            if (Math.abs(rgba[i] - r) < 40 && Math.abs(rgba[i + 1] - g) < 40 && Math.abs(rgba[i + 2] - b) < 40) n++;
          }
        return n;
      };
      expect(painted(PALETTE[0])).toBeGreaterThan(100);
      expect(painted(PALETTE[1])).toBeGreaterThan(100);
      expect(painted("#9467bd")).toBeLessThan(5); // a colour no run has
    } finally {
      await context.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
