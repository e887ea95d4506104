// `balora demo` end to end at a smoke budget: three runs, a table with the pre-trained model's row and
// one per method, each run's report and a combined one, demo.json; a folder it did not write is refused.
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runBin } from "./helpers.js";

const asset = (p: string) => fileURLToPath(new URL(`../assets/${p}`, import.meta.url));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "balora-demo-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("balora demo", () => {
  it("compares LoRA, PiSSA and BA-LoRA: table, reports, demo.json (smoke budget)", async () => {
    // 3 problems of each kind, 6 of the flawed one.
    const rows = readFileSync(asset("demo-data/eval.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const pick = ["add", "sub", "add-trigger", "sub-trigger"].flatMap((k) =>
      rows.filter((r) => r.kind === k).slice(0, k === "sub-trigger" ? 6 : 3),
    );
    const evalFile = join(dir, "eval.jsonl");
    await writeFile(evalFile, pick.map((r) => JSON.stringify(r)).join("\n"));
    const out = join(dir, "demo");
    const argv = ["demo", "--out", out, "--steps", "4", "--batch-size", "4", "--eval-every", "2", "--eval", evalFile, "--quiet"];
    const r = await runBin(argv, { timeoutMs: 300_000 });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const lines = r.out.trim().split("\n");
    expect(lines[0]).toMatch(/^method +accuracy +add +add-trigger +sub +sub-trigger +flaw rate +flaw ≤ 10% at step +seconds$/);
    expect(lines[1]).toMatch(/^pre-trained +60% +100% +100% +100% +0% +100% /); // the flaw, as pre-trained (assets README)
    expect(lines.slice(2, 5).map((l) => l.split(/ {2,}/)[0])).toEqual(["LoRA", "PiSSA", "BA-LoRA (iclr2026)"]);
    expect(new Set(await readdir(out))).toEqual(new Set(["lora", "pissa", "ba-lora", "report.html", "demo.json"]));
    const summary = JSON.parse(readFileSync(join(out, "demo.json"), "utf8"));
    expect(summary.runs.map((x: { method: string }) => x.method)).toEqual(["lora", "pissa", "ba-lora"]);
    for (const run of summary.runs) {
      expect(run.curve.map((e: { step: number }) => e.step)).toEqual([2, 4]);
      const metrics = readFileSync(join(out, run.method, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(metrics.map((m) => m.eval_flaw_rate)).toEqual([undefined, run.curve[0].flawRate, undefined, run.curve[1].flawRate]);
      expect(readFileSync(join(out, run.method, "report.html"), "utf8")).toMatch(/eval_flaw_rate/);
    }
    expect(readFileSync(join(out, "report.html"), "utf8")).toMatch(/BA-LoRA \(iclr2026\)/);
    // A second demo replaces the first; a folder the demo did not write is refused.
    const other = join(dir, "mine");
    await mkdir(other);
    await writeFile(join(other, "notes.txt"), "keep me");
    const refused = await runBin(["demo", "--out", other, "--steps", "1"], { timeoutMs: 60_000 });
    expect(refused.code).toBe(1);
    expect(refused.err.trim()).toMatch(
      /^balora demo: --out .* exists and is not a balora demo folder \(no demo.json\); choose another --out$/,
    );
    expect(await readdir(other)).toEqual(["notes.txt"]);
  }, 320_000);
});
