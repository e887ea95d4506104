import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { quickstart } from "../examples/quickstart.js";
import { fixture } from "./helpers.js";

describe("README example", () => {
  it("is examples/quickstart.ts verbatim and runs on a fixture model", async () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    expect(readme).toContain(readFileSync(new URL("../examples/quickstart.ts", import.meta.url), "utf8").trim());
    expect(typeof (await quickstart(fixture("llama-f32")))).toBe("string");
  });
});
