// The README example must be examples/quickstart.ts verbatim, and it must run: the README cannot
// drift from the code.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { quickstart } from "../examples/quickstart.js";

describe("README example", () => {
  it("is the runnable examples/quickstart.ts, verbatim, and it round-trips", async () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const code = readFileSync(new URL("../examples/quickstart.ts", import.meta.url), "utf8");
    expect(readme).toContain(code.trim());
    expect(await quickstart()).toBe(20);
  });
});
