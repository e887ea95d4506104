import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { quickstart } from "../examples/quickstart.js";
import { modelFixture } from "./helpers.js";

describe("README example", () => {
  it("is examples/quickstart.ts verbatim and runs", async () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    expect(readme).toContain(readFileSync(new URL("../examples/quickstart.ts", import.meta.url), "utf8").trim());
    const dir = await mkdtemp(join(tmpdir(), "balora-readme-"));
    try {
      expect(await quickstart(modelFixture("llama-f32"), join(dir, "pissa"))).toEqual([0, 0]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
