// The README's example is examples/quickstart.ts verbatim and runs; its output (a tiny random
// model's generation: arbitrary bytes) is captured and checked, not printed into the test log.
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { quickstart } from "../examples/quickstart.js";
import { modelFixture } from "./helpers.js";

describe("README example", () => {
  it("is examples/quickstart.ts verbatim and runs", async () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    expect(readme).toContain(readFileSync(new URL("../examples/quickstart.ts", import.meta.url), "utf8").trim());
    const dir = await mkdtemp(join(tmpdir(), "balora-readme-"));
    const out: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((...a) => void out.push(a.join(" ")));
    const write = vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => {
      out.push(String(s));
      return true;
    });
    try {
      expect(await quickstart(modelFixture("llama-f32"), join(dir, "pissa"))).toEqual([0, 0]);
    } finally {
      log.mockRestore();
      write.mockRestore();
      await rm(dir, { recursive: true, force: true });
    }
    expect(out[0]).toMatch(/^trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: [\d.]+\nwrote the residual model/);
    expect(out[1].endsWith("\n")).toBe(true);
  });
});
