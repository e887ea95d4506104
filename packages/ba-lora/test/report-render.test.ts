// The HTML report as a person sees it: rendered by headless Chromium (Debian's /usr/bin/chromium via
// playwright-core, never a downloaded browser), checked on the layout and on the screenshot's pixels.
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { chromium } from "playwright-core";
import { describe, expect, it } from "vitest";
import { renderReport } from "../src/index.js";
import { PALETTE } from "../src/report/svg.js";
import { twoRuns } from "./report-fixtures.js";

const CHROMIUM = process.env.BALORA_CHROMIUM ?? "/usr/bin/chromium";
const why = existsSync(CHROMIUM)
  ? null
  : `no Chromium at ${CHROMIUM}: install Debian's chromium (npm test's set-up does, as root on Debian) or set BALORA_CHROMIUM`;
if (why) console.warn(`report-render.test.ts skipped: ${why}`);

/** Decodes an 8-bit RGB/RGBA PNG (what Chromium writes) into RGBA pixels. */
function decodePng(png: Buffer): { width: number; height: number; rgba: Uint8Array } {
  let pos = 8;
  let width = 0;
  let height = 0;
  let channels = 4;
  const idat: Buffer[] = [];
  while (pos < png.length) {
    const len = png.readUInt32BE(pos);
    const type = png.toString("ascii", pos + 4, pos + 8);
    const data = png.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      if (data[8] !== 8 || data[12] !== 0) throw new Error("decodePng: only 8-bit, non-interlaced PNGs");
      channels = data[9] === 6 ? 4 : data[9] === 2 ? 3 : 0;
      if (!channels) throw new Error(`decodePng: colour type ${data[9]} not handled`);
    } else if (type === "IDAT") idat.push(data);
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = new Uint8Array(width * height * 4);
  let prev = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const cur = new Uint8Array(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? cur[i - channels] : 0;
      const b = prev[i];
      const c = i >= channels ? prev[i - channels] : 0;
      const p = a + b - c;
      const paeth =
        Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const pred = [0, a, b, (a + b) >> 1, paeth][f];
      cur[i] = (line[i] + pred) & 255;
    }
    for (let x = 0; x < width; x++) {
      for (let k = 0; k < 3; k++) out[(y * width + x) * 4 + k] = cur[x * channels + k];
      out[(y * width + x) * 4 + 3] = channels === 4 ? cur[x * channels + 3] : 255;
    }
    prev = cur;
  }
  return { width, height, rgba: out };
}

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
