// The browser example as a person runs it: the built site served over HTTP to headless Chromium (Debian's
// /usr/bin/chromium via playwright-core, SwiftShader WebGPU), its live log, curves and adapter download,
// checked against `balora train` on the same run in Node (Dawn on lavapipe) and loaded by `balora forward`.
/// <reference lib="dom" />
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { ALPACA_COT_PROMPT, parseRecords } from "@balora/ba-lora";
import { parseSafetensors, serializeSafetensors } from "@balora/safetensors";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodePng } from "../../../scripts/lib/png.mjs";
import { nodeReferences } from "../../../scripts/lib/browser-bundle.mjs";
import { SERIES_COLORS } from "../src/colors.js";
import { queryOf, type RunSettings, runFromQuery } from "../src/query.js";
import { cliFlags, selectRows } from "../src/settings.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DIST = join(ROOT, "dist");
const BALORA = fileURLToPath(new URL("../../../packages/ba-lora/bin/balora.mjs", import.meta.url));
const ASSETS = fileURLToPath(new URL("../../../packages/ba-lora/assets/", import.meta.url));
const CHROMIUM = process.env.BALORA_CHROMIUM ?? "/usr/bin/chromium";
/** A short run: 8 steps on the 25 flawed rows (batch 4: two epochs), BA-LoRA's iclr2026 preset. */
const RUN: RunSettings = { ...runFromQuery(""), steps: 8, batch: 4, data: "flaw", preset: "iclr2026", seed: 42 };
/**
 * Browser (SwiftShader) vs Node (lavapipe) run the same WGSL kernels in float32, but the two CPU
 * devices order reductions differently (~1e-7 relative per op). Two steps amplify that: the PiSSA
 * init's SVD (its singular vectors already differ by ~5e-4 relative between float32 and float64), and
 * AdamW, whose m/√v turns a gradient entry near zero into a ±lr step whatever its rounding. Measured
 * on this run: Node lavapipe vs Node's float64 CPU backend differ by ‖Δw‖/‖w‖ 3.3e-4, 1.6% of the
 * update and 7e-4 of max|w| per element; browser vs Node by 3.0e-4, 1.4% and 3.2e-3 — the same
 * size, so an element-wise 1e-4 holds for neither pair. Tolerances: per tensor ‖Δw‖/‖w‖ ≤ 1e-3 and
 * ‖Δw‖ ≤ 5% of the training update ‖w − w0‖; these tell runs apart (Node with 7 steps instead of 8:
 * 4.5e-3 and 12.8%; lr 4.5e-4 instead of 5e-4: 3.7e-3 and 10.3%). Per element only a sanity bound,
 * |Δw| ≤ 1e-2 of the tensor's max|w| (those two wrong runs give 1.7e-3 and 2.6e-3: not a discriminating test).
 */
const WEIGHTS_RTOL = 1e-3;
const UPDATE_RTOL = 0.05;
const ELEMENT_RTOL = 1e-2;
/**
 * The logged loss and terms, absolute: the consistency KL of two nearly equal distributions is a
 * difference of sums of O(10) logits, so its rounding error is absolute (~1e-5), not relative to its tiny value.
 */
const TERM_ATOL = 1e-4;

const why = existsSync(CHROMIUM)
  ? null
  : `no Chromium at ${CHROMIUM}: install Debian's chromium (npm test's set-up does, as root on Debian) or set BALORA_CHROMIUM`;
if (why) console.warn(`browser.test.ts skipped: ${why}`);

const TYPES: Record<string, string> = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".css": "text/css",
  ".json": "application/json",
  ".jsonl": "application/jsonl",
  ".safetensors": "application/octet-stream",
};

/** A plain static server for dist/ (what `npx http-server dist` does), recording each path asked for. */
function serveDist(): Promise<{ server: Server; base: string; paths: string[] }> {
  const paths: string[] = [];
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    paths.push(path);
    const file = normalize(join(DIST, path.endsWith("/") ? `${path}index.html` : path));
    if (!file.startsWith(DIST)) return res.writeHead(403).end();
    try {
      const body = await readFile(file);
      res.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      resolve({ server, base: `http://127.0.0.1:${port}/`, paths });
    }),
  );
}

function balora(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BALORA, ...args], { env: { ...process.env, ...env } });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("close", (code) => resolve({ code, out }));
  });
}

const rgbOf = (hex: string): number[] => [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));

/** Chromium with SwiftShader WebGPU, or (extra flags) without WebGPU: each in a fresh profile under `dir`. */
async function launch(dir: string, webgpu: boolean, extra: string[] = []): Promise<BrowserContext> {
  return chromium.launchPersistentContext(join(dir, `profile-${webgpu ? "webgpu" : "none"}-${extra.length}`), {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 1000 },
    args: [
      "--headless",
      "--no-sandbox",
      ...(webgpu ? ["--enable-unsafe-webgpu"] : ["--disable-gpu", ...extra]),
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
    ],
  });
}

interface LogRow {
  step: number;
  loss: number;
  task_loss: number;
  [term: string]: number;
}

beforeAll(() => build({ root: ROOT, configFile: join(ROOT, "vite.config.ts"), logLevel: "warn" }).then(() => undefined), 120_000);

describe("the built site", () => {
  it("builds to a static site with index.html at its root and relative paths only", () => {
    const html = readFileSync(join(DIST, "index.html"), "utf8");
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(refs.length).toBeGreaterThanOrEqual(2);
    for (const r of refs) expect(r).toMatch(/^(\.\/|data:)/);
    for (const f of ["model/model.safetensors", "model/tokenizer.json", "model/config.json", "data/train.jsonl"])
      expect(readFileSync(join(DIST, f))).toEqual(
        readFileSync(join(ASSETS, f.replace(/^model\//, "demo-model/").replace(/^data\//, "demo-data/"))),
      );
    // the bundles reach no node: module, require() or Dawn's `webgpu` package (the browser export conditions)
    const bundles = readdirSync(join(DIST, "assets")).filter((f) => f.endsWith(".js"));
    expect(bundles.some((f) => f.startsWith("worker-"))).toBe(true);
    for (const f of bundles) expect(nodeReferences(readFileSync(join(DIST, "assets", f), "utf8")), f).toEqual([]);
  });
});

describe.skipIf(why !== null)(`the browser example in headless Chromium${why ? ` (skipped: ${why})` : ""}`, () => {
  let dir: string;
  let site: Awaited<ReturnType<typeof serveDist>>;
  let context: BrowserContext;
  let page: Page;
  let noAdapter: string | null = null;
  const errors: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "balora-browser-"));
    site = await serveDist();
    context = await launch(dir, true);
    page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    await page.route("**/favicon.ico", (r) => r.fulfill({ status: 204 })); // the probe's; index.html has its own icon
    await page.goto(`${site.base}model/config.json`); // a page of the site: a secure context (127.0.0.1), no training
    const adapter = await page.evaluate(async () => {
      const gpu = (navigator as { gpu?: { requestAdapter(): Promise<{ info?: { description?: string } } | null> } }).gpu;
      return gpu ? !!(await gpu.requestAdapter()) : false;
    });
    if (!adapter) {
      noAdapter = `${CHROMIUM} offers no WebGPU adapter with --enable-unsafe-webgpu (no SwiftShader/Vulkan here)`;
      console.warn(`browser.test.ts: training checks skipped: ${noAdapter}`);
    }
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    site?.server.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("trains in a worker, logs each step, draws the curves, and the adapter matches balora train in Node", async (ctx) => {
    if (noAdapter) ctx.skip(noAdapter);
    const t0 = performance.now();
    site.paths.length = 0;
    await page.goto(`${site.base}${queryOf(RUN)}`);
    // the page stays responsive while the worker trains: its 50 ms ticker keeps going
    await page.waitForFunction(() => document.body.dataset.state === "training", null, { timeout: 120_000 });
    const ticks0 = await page.evaluate(() => (window as unknown as { baloraTicks: number }).baloraTicks);
    await page.waitForTimeout(1000);
    const ticks1 = await page.evaluate(() => (window as unknown as { baloraTicks: number }).baloraTicks);
    expect(ticks1 - ticks0).toBeGreaterThanOrEqual(10);
    await page.waitForFunction(() => ["done", "error", "no-webgpu"].includes(document.body.dataset.state ?? ""), null, {
      timeout: 300_000,
    });
    const browserSeconds = (performance.now() - t0) / 1000;
    expect(await page.evaluate(() => document.body.dataset.state), (await page.locator("#status").textContent()) ?? "").toBe("done");
    expect(errors).toEqual([]);

    // the log: one JSON object per step with the loss and each term
    const rows = ((await page.locator("#balora-log").textContent()) ?? "")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as LogRow);
    expect(rows.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    for (const r of rows) expect(Object.keys(r)).toEqual(expect.arrayContaining(["loss", "task_loss", "consistency", "diversity", "svd"]));
    // the loss decreases: the flawed rows' loss falls as the adapter learns to subtract
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(rows[7].task_loss).toBeLessThan(0.5 * rows[0].task_loss);
    expect(mean(rows.slice(4).map((r) => r.loss))).toBeLessThan(mean(rows.slice(0, 4).map((r) => r.loss)));
    const before = (await page.locator("#before").textContent()) ?? "";
    const after = (await page.locator("#after").textContent()) ?? "";
    // before training, the pre-trained model shows its flaw on the probe (a subtraction answered by adding)
    expect(before.trim()).toMatch(/^17 \+ 5 = 22\b/);
    expect(after.trim()).toMatch(/^17 [+-] 5 = \d+/);
    console.log(`browser.test.ts: generated before "${before.trim()}", after 8 steps "${after.trim()}"`);

    // the curves, as rendered: one chart per series, each curve inside its plot and spanning the steps
    const layout = await page.evaluate(() => {
      const box = (e: Element) => e.getBoundingClientRect();
      return [...document.querySelectorAll("svg.chart")].map((svg) => {
        const plot = box(svg.querySelector("rect.plot")!);
        const curve = svg.querySelector("path.curve")!;
        const c = box(curve);
        return {
          series: svg.getAttribute("data-series"),
          stroke: getComputedStyle(curve).stroke,
          plot: { x: plot.x, y: plot.y, w: plot.width, h: plot.height },
          curve: { x: c.x, y: c.y, w: c.width, h: c.height },
        };
      });
    });
    expect(layout.map((c) => c.series)).toEqual(["loss", "task_loss", "consistency", "diversity", "svd"]);
    for (const c of layout) {
      expect(c.plot.w).toBeGreaterThan(200);
      expect(c.curve.w).toBeGreaterThan(0.95 * c.plot.w); // steps 1..8 span the whole width
      expect(c.curve.h).toBeGreaterThan(0.5 * c.plot.h); // not flat: min and max of the curve are the plot's edges
      expect(c.curve.x).toBeGreaterThanOrEqual(c.plot.x - 2);
      expect(c.curve.y).toBeGreaterThanOrEqual(c.plot.y - 2);
      expect(c.curve.x + c.curve.w).toBeLessThanOrEqual(c.plot.x + c.plot.w + 2);
      expect(c.curve.y + c.curve.h).toBeLessThanOrEqual(c.plot.y + c.plot.h + 2);
      expect(c.stroke).toBe(`rgb(${rgbOf(SERIES_COLORS[c.series!]).join(", ")})`);
    }
    const shot = await page.screenshot({ fullPage: true, path: process.env.BALORA_BROWSER_PNG });
    const { width, rgba } = decodePng(shot);
    const scrollY = await page.evaluate(() => window.scrollY);
    const painted = (c: (typeof layout)[number], hex: string) => {
      const [r, g, b] = rgbOf(hex);
      let n = 0;
      for (let y = Math.ceil(c.plot.y + scrollY); y < c.plot.y + scrollY + c.plot.h; y++)
        for (let x = Math.ceil(c.plot.x); x < c.plot.x + c.plot.w; x++) {
          const i = (y * width + x) * 4;
          if (Math.abs(rgba[i] - r) < 40 && Math.abs(rgba[i + 1] - g) < 40 && Math.abs(rgba[i + 2] - b) < 40) n++;
        }
      return n;
    };
    for (const c of layout) {
      expect(painted(c, SERIES_COLORS[c.series!]), `${c.series}'s colour in its plot`).toBeGreaterThan(150);
      expect(painted(c, "#9467bd"), "a colour no series has").toBeLessThan(5);
    }

    // the download: the adapter's two peft files
    const got = join(dir, "downloaded");
    const saved: Record<string, Buffer> = {};
    for (const name of ["adapter_config.json", "adapter_model.safetensors"]) {
      const [download] = await Promise.all([page.waitForEvent("download"), page.locator(`a[data-file="${name}"]`).click()]);
      expect(download.suggestedFilename()).toBe(name);
      await download.saveAs(join(got, name));
      saved[name] = await readFile(join(got, name));
    }
    // everything the page fetched is a file of the site (no network beyond it, no 404)
    expect(site.paths.filter((p) => p !== "/" && !existsSync(join(DIST, p)))).toEqual([]);
    expect(site.paths).toEqual(expect.arrayContaining(["/model/model.safetensors", "/data/train.jsonl"]));

    // Node: balora train on the same rows with the same settings (Dawn, lavapipe)
    const nodeOut = join(dir, "node-run");
    const data = join(dir, "flaw.jsonl");
    const records = selectRows(parseRecords(readFileSync(join(ASSETS, "demo-data/train.jsonl"), "utf8"), "train.jsonl"), RUN.data);
    await writeFile(data, records.map((r) => JSON.stringify(r.value)).join("\n"));
    await writeFile(join(dir, "template.txt"), ALPACA_COT_PROMPT);
    const t1 = performance.now();
    const train = await balora([
      "train",
      "--model",
      join(ASSETS, "demo-model"),
      "--data",
      data,
      "--out",
      nodeOut,
      "--template",
      join(dir, "template.txt"),
      "--quiet",
      ...cliFlags(RUN),
    ]);
    expect(train.code, train.out).toBe(0);
    const nodeSeconds = (performance.now() - t1) / 1000;
    const nodeRows = readFileSync(join(nodeOut, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as LogRow);
    // each step's loss and terms: |Δ| per key over the 8 steps
    const rowDiff: Record<string, number> = {};
    for (const [i, r] of rows.entries())
      for (const k of ["loss", "task_loss", "consistency", "diversity", "svd"])
        rowDiff[k] = Math.max(rowDiff[k] ?? 0, Math.abs(r[k] - nodeRows[i][k]));
    console.log(`browser.test.ts: max |Δ| browser vs node per logged value: ${JSON.stringify(rowDiff)}`);
    for (const [k, d] of Object.entries(rowDiff)) expect(d, k).toBeLessThanOrEqual(TERM_ATOL);
    const config = JSON.parse(saved["adapter_config.json"].toString("utf8"));
    const nodeConfig = JSON.parse(readFileSync(join(nodeOut, "adapter_config.json"), "utf8"));
    expect({ ...config, base_model_name_or_path: null }).toEqual({ ...nodeConfig, base_model_name_or_path: null });
    const mine = await parseSafetensors(new Uint8Array(saved["adapter_model.safetensors"]));
    const theirs = await parseSafetensors(new Uint8Array(readFileSync(join(nodeOut, "adapter_model.safetensors"))));
    const initial = await parseSafetensors(new Uint8Array(readFileSync(join(nodeOut, "initial_adapter/adapter_model.safetensors"))));
    expect(mine.names).toEqual(theirs.names);
    expect(mine.names).toHaveLength(56); // lora_A and lora_B of 7 linear layers × 4 decoder layers
    const worst = { weights: 0, update: 0, element: 0, moved: Number.POSITIVE_INFINITY };
    for (const name of theirs.names) {
      const a = (await mine.readTensor(name)).data as Float32Array;
      const b = (await theirs.readTensor(name)).data as Float32Array;
      const w0 = (await initial.readTensor(name)).data as Float32Array;
      let d2 = 0;
      let b2 = 0;
      let u2 = 0;
      let peak = 0;
      let dmax = 0;
      for (let i = 0; i < b.length; i++) {
        d2 += (a[i] - b[i]) ** 2;
        b2 += b[i] ** 2;
        u2 += (b[i] - w0[i]) ** 2;
        peak = Math.max(peak, Math.abs(b[i]));
        dmax = Math.max(dmax, Math.abs(a[i] - b[i]));
      }
      worst.weights = Math.max(worst.weights, Math.sqrt(d2 / b2));
      worst.update = Math.max(worst.update, Math.sqrt(d2 / u2));
      worst.element = Math.max(worst.element, dmax / peak);
      worst.moved = Math.min(worst.moved, Math.sqrt(u2 / b2));
    }
    console.log(
      `browser.test.ts: browser ${browserSeconds.toFixed(1)} s (load, PiSSA, generation, 8 steps), node ${nodeSeconds.toFixed(1)} s; ` +
        `browser vs node: ‖Δw‖/‖w‖ ≤ ${worst.weights.toExponential(2)}, ‖Δw‖/‖w − w0‖ ≤ ${worst.update.toExponential(2)}, ` +
        `max|Δw|/max|w| ≤ ${worst.element.toExponential(2)}; training moved each tensor by ≥ ${worst.moved.toExponential(2)} of its norm`,
    );
    expect(worst.weights).toBeLessThanOrEqual(WEIGHTS_RTOL);
    expect(worst.update).toBeLessThanOrEqual(UPDATE_RTOL);
    expect(worst.element).toBeLessThanOrEqual(ELEMENT_RTOL);
    // the check can tell the trained adapter from the one training started from
    expect(worst.moved).toBeGreaterThan(3 * WEIGHTS_RTOL);

    // balora forward loads the downloaded adapter, and its logits are the Node adapter's
    const input = join(dir, "ids.safetensors");
    const prompt = records[0].value as { instruction: string };
    void prompt;
    const ids = Int32Array.from([1, 46, 120, 33, 7, 250, 99, 12]);
    await writeFile(input, await serializeSafetensors({ input_ids: { dtype: "I32", shape: [1, ids.length], data: ids } }));
    const logits: Float32Array[] = [];
    for (const adapter of [got, nodeOut]) {
      const out = join(dir, `logits-${logits.length}.safetensors`);
      const fwd = await balora(["forward", "--model", join(ASSETS, "demo-model"), "--adapter", adapter, "--input", input, "--out", out]);
      expect(fwd.code, fwd.out).toBe(0);
      logits.push((await (await parseSafetensors(new Uint8Array(readFileSync(out)))).readTensor("logits")).data as Float32Array);
    }
    expect(logits[0].length).toBe(ids.length * 495);
    const spread = logits[1].reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const diff = logits[0].reduce((m, v, i) => Math.max(m, Math.abs(v - logits[1][i])), 0);
    expect(diff).toBeLessThanOrEqual(1e-3 * spread);

    // the button restarts training with the form's settings (and puts them in the URL)
    await page.locator('input[name="steps"]').fill("2");
    await page.locator('select[name="preset"]').selectOption("lora");
    await page.locator("#restart").click();
    await page.waitForFunction(
      () => document.body.dataset.state === "done" && document.getElementById("balora-log")!.textContent!.trim().split("\n").length === 2,
      null,
      { timeout: 120_000 },
    );
    expect(runFromQuery(new URL(page.url()).search)).toEqual({ ...RUN, steps: 2, preset: "lora" });
    expect(await page.locator("svg.chart").evaluateAll((s) => s.map((e) => e.getAttribute("data-series")))).toEqual(["loss", "task_loss"]);
  }, 600_000);

  for (const [label, extra] of [
    ["no adapter (Chromium without --enable-unsafe-webgpu)", []],
    ["no navigator.gpu (WebGPU switched off)", ["--disable-blink-features=WebGPU"]],
  ] as const)
    it(`says in plain words that there is no WebGPU and what to enable: ${label}`, async () => {
      const none = await launch(dir, false, [...extra]);
      try {
        const p = none.pages()[0] ?? (await none.newPage());
        await p.goto(`${site.base}${queryOf(RUN)}`);
        await p.waitForFunction(() => ["no-webgpu", "training", "error"].includes(document.body.dataset.state ?? ""), null, {
          timeout: 60_000,
        });
        expect(await p.evaluate(() => document.body.dataset.state)).toBe("no-webgpu");
        const text = (await p.locator("#no-webgpu").textContent()) ?? "";
        expect(await p.locator("#no-webgpu").isVisible()).toBe(true);
        expect(text).toMatch(/^No WebGPU here \(/);
        expect(text).toContain("chrome://flags/#enable-unsafe-webgpu");
        expect(text).toMatch(/browser with WebGPU/);
        expect((await p.locator("#balora-log").textContent()) ?? "").toBe("");
      } finally {
        await none.close();
      }
    });
});
