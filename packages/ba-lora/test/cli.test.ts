import { describe, expect, it } from "vitest";
import { run } from "./helpers.js";

describe("balora CLI basics", () => {
  it("--help lists the commands; a command's --help shows its usage", async () => {
    const h = await run(["--help"]);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/forward/);
    expect(h.out).toMatch(/generate/);
    const f = await run(["forward", "--help"]);
    expect(f.code).toBe(0);
    expect(f.out).toMatch(/balora forward --model DIR/);
  });
  it("unknown commands and flags, missing options and bad numbers: one line, non-zero", async () => {
    const u = await run(["frobnicate"]);
    expect(u.code).not.toBe(0);
    expect(u.err).toMatch(/unknown command 'frobnicate'/);
    const m = await run(["forward", "--model", "x"]);
    expect(m.code).not.toBe(0);
    expect(m.err.split("\n")[0]).toMatch(/missing required option --input/);
    const flag = await run(["forward", "--model", "x", "--input", "a", "--out", "b", "--bogus", "1"]);
    expect(flag.err).toMatch(/Unknown option '--bogus'/);
    const n = await run(["generate", "--model", "x", "--prompt", "hi", "--max-new-tokens", "lots"]);
    expect(n.err).toMatch(/--max-new-tokens must be a number, got 'lots'/);
  });
  it("a missing model directory names the file", async () => {
    const r = await run(["forward", "--model", "/nonexistent/model", "--input", "a.safetensors", "--out", "/tmp/b.safetensors"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/\/nonexistent\/model\/config\.json: not found/);
    expect(r.err).not.toMatch(/at .*\.ts:\d+/);
  });
});
