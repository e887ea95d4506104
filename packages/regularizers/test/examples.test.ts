// The README's example is examples/quickstart.ts verbatim, and it runs: fused and materialised agree.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { quickstart } from "../examples/quickstart.js";
import { testBackend } from "./helpers.js";

describe("README example", () => {
  it("is examples/quickstart.ts verbatim; the fused loss equals the materialised one", async () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    expect(readme).toContain(readFileSync(new URL("../examples/quickstart.ts", import.meta.url), "utf8").trim());
    const { fused, materialised } = await quickstart(await testBackend());
    expect(Number.isFinite(fused)).toBe(true);
    expect(Math.abs(fused - materialised) / Math.abs(materialised)).toBeLessThan(1e-5);
  });
});
