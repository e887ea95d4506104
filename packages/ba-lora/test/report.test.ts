// The training report: what renderReport draws (a curve per run per metric, gaps at missing values,
// escaped text, no script), metrics.jsonl parsing, and `balora report` on run directories.
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseMetrics, renderReport, type StepMetrics } from "../src/index.js";
import { run } from "./helpers.js";
import { twoRuns } from "./report-fixtures.js";

const count = (s: string, needle: RegExp) => (s.match(needle) ?? []).length;

describe("renderReport", () => {
  it("one chart per recorded metric, one curve per run in each, legend and tables", () => {
    const html = renderReport(twoRuns());
    // 10 standard charts + eval_accuracy + eval_loss; loss chart: loss and task_loss for 2 runs
    expect(count(html, /<svg class="chart"/g)).toBe(12);
    expect(count(html, /<path class="curve" data-run="0"/g)).toBe(13);
    expect(count(html, /<path class="curve" data-run="1"/g)).toBe(13);
    expect(count(html, /stroke-dasharray/g)).toBe(2); // task_loss dashed, per run
    expect(html).toContain('aria-label="eval_accuracy"');
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/https?:\/\//); // nothing to fetch
    expect(html).toContain("ba-lora &lt;iclr2026&gt;");
    // settings side by side, the differing ones marked
    expect(html).toMatch(/<tr class="differs"><td>lora\.alpha<\/td><td>8<\/td><td>16<\/td><\/tr>/);
    expect(html).toMatch(/<tr><td>lora\.r<\/td><td>8<\/td><td>8<\/td><\/tr>/);
    expect(html).toMatch(/<td>optimizer steps logged<\/td><td>60<\/td><td>40<\/td>/);
  });

  it("curves map steps and values into the plot area; a missing value breaks the line", () => {
    const metrics: StepMetrics[] = [
      { step: 1, loss: 4 },
      { step: 2, loss: 3 },
      { step: 3, loss: Number.NaN },
      { step: 4, loss: 2 },
      { step: 5, loss: 1 },
    ];
    const html = renderReport([{ name: "r", config: {}, metrics }]);
    const d = /<path class="curve"[^>]* d="([^"]+)"/.exec(html)![1];
    const pts = [...d.matchAll(/([ML])([\d.]+),([\d.]+)/g)].map((m) => [m[1], Number(m[2]), Number(m[3])] as const);
    expect(pts.map((p) => p[0])).toEqual(["M", "L", "M", "L"]);
    const rect = /<rect class="plot" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/.exec(html)!.slice(1).map(Number);
    for (const [, x, y] of pts) {
      expect(x).toBeGreaterThanOrEqual(rect[0]);
      expect(x).toBeLessThanOrEqual(rect[0] + rect[2]);
      expect(y).toBeGreaterThanOrEqual(rect[1]);
      expect(y).toBeLessThanOrEqual(rect[1] + rect[3]);
    }
    // steps 1 and 5 at the plot's edges, larger loss higher up
    expect(pts[0][1]).toBeCloseTo(rect[0], 0);
    expect(pts[3][1]).toBeCloseTo(rect[0] + rect[2], 0);
    expect(pts[0][2]).toBeLessThan(pts[1][2]);
    expect(html).toMatch(/Not recorded by any run: .*consistency/);
  });
});

describe("metrics.jsonl", () => {
  it("keeps numbers, reads null as NaN, tolerates only a cut-off last line", () => {
    const { metrics, warnings } = parseMetrics(
      '{"step": 1, "loss": 2.5, "note": "x"}\n{"step": 2, "loss": null}\n{"step": 3, "lo',
      "m.jsonl",
    );
    expect(metrics).toEqual([
      { step: 1, loss: 2.5 },
      { step: 2, loss: Number.NaN },
    ]);
    expect(warnings).toEqual(["m.jsonl:3: the last line is not complete JSON (a run stopped while writing it?); left out"]);
    expect(() => parseMetrics('{"step": 1}\n{bad\n{"step": 3}\n', "m.jsonl")).toThrow(/^m\.jsonl:2: invalid JSON/);
    expect(() => parseMetrics('{"loss": 1}\n', "m.jsonl")).toThrow("m.jsonl:1: no numeric 'step' (fields: loss)");
  });
});

describe("balora report", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "balora-report-"));
    for (const r of twoRuns()) {
      const d = join(dir, r.name === "pissa" ? "pissa" : "ba-lora");
      await mkdir(d);
      await writeFile(join(d, "metrics.jsonl"), r.metrics.map((m) => JSON.stringify(m)).join("\n") + "\n");
      await writeFile(join(d, "training_config.json"), JSON.stringify(r.config));
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes one page for several runs; refuses to overwrite without --overwrite", async () => {
    const out = join(dir, "r.html");
    const r = await run(["report", join(dir, "ba-lora"), join(dir, "pissa"), "--out", out]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toBe(`wrote the report of 2 run(s) to ${out}`);
    const html = readFileSync(out, "utf8");
    expect(html).toContain("<title>balora report: ba-lora, pissa</title>");
    expect(count(html, /<path class="curve" data-run="1"/g)).toBe(13);
    const again = await run(["report", join(dir, "pissa"), "--out", out]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/--out .*r\.html already exists; choose a new path, or pass --overwrite/);
    expect((await run(["report", "--out", out, join(dir, "pissa"), "--overwrite", "--title", "T"])).code).toBe(0);
    expect(readFileSync(out, "utf8")).toContain("<title>T</title>");
  });

  it("one-line errors: no run, not a run directory, a broken line; a missing config is a note", async () => {
    expect((await run(["report"])).code).toBe(2);
    const none = await run(["report", join(dir, "nope"), "--out", join(dir, "x.html")]);
    expect(none.err).toMatch(/^balora report: RUN_DIR .*nope: not found$/);
    await mkdir(join(dir, "empty"));
    const empty = await run(["report", join(dir, "empty"), "--out", join(dir, "x.html")]);
    expect(empty.err).toMatch(/empty\/metrics\.jsonl: not found; is .*empty the --out directory of balora train\?$/);
    await mkdir(join(dir, "broken"));
    await writeFile(join(dir, "broken", "metrics.jsonl"), '{"step": 1, "loss": 1}\n{"step": 2, "loss": \n{"step": 3}\n');
    const broken = await run(["report", join(dir, "broken"), "--out", join(dir, "x.html")]);
    expect(broken.code).toBe(1);
    expect(broken.err).toMatch(/broken\/metrics\.jsonl:2: invalid JSON/);
    await writeFile(join(dir, "broken", "metrics.jsonl"), '{"step": 1, "loss": 1}\n{"step": 2, "loss": 0.5}\n{"step": 3, "lo');
    const cut = await run(["report", join(dir, "broken"), "--out", join(dir, "x.html")]);
    expect(cut.code).toBe(0);
    expect(cut.err).toMatch(/warning: .*metrics\.jsonl:3: the last line is not complete JSON/);
    expect(cut.err).toMatch(/training_config\.json not found; the settings table is left empty for broken/);
    expect(existsSync(join(dir, "x.html"))).toBe(true);
    const self = await run(["report", join(dir, "pissa"), "--out", join(dir, "pissa", "metrics.jsonl"), "--overwrite"]);
    expect(self.err).toMatch(/would replace RUN_DIR .*metrics\.jsonl/);
  });
});
