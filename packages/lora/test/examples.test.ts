import { mkdtemp, rm } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { quickstart } from "../examples/quickstart.js";

describe("README example", () => {
  it("is examples/quickstart.ts verbatim; the converted PiSSA adapter on the original base reproduces the trained model", async () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    expect(readme).toContain(readFileSync(new URL("../examples/quickstart.ts", import.meta.url), "utf8").trim());
    const dir = await mkdtemp(join(tmpdir(), "balora-lora-readme-"));
    try {
      expect(await quickstart(dir)).toBeLessThan(1e-5);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
