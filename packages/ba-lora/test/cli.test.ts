// The CLI's shared rules: help with every flag and default, --version, exit codes (2 usage, 1 data),
// one line for data errors, `--flag -1` reaching the flag's own check, and BALORA_BACKEND.
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kebab } from "../src/cli/args.js";
import { forwardCommand } from "../src/cli/forward.js";
import { generateCommand } from "../src/cli/generate.js";
import { initCommand } from "../src/cli/init.js";
import { mergeCommand } from "../src/cli/merge.js";
import { modelFixture, run, runBin } from "./helpers.js";

const VERSION = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version as string;
const llama = modelFixture("llama-f32");
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "balora-cli-basics-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("balora CLI basics", () => {
  it("--help lists the commands; a command's --help shows its usage and every flag with its default", async () => {
    const h = await run(["--help"]);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/forward/);
    expect(h.out).toMatch(/generate/);
    for (const [name, cmd] of Object.entries({
      forward: forwardCommand,
      generate: generateCommand,
      init: initCommand,
      merge: mergeCommand,
    })) {
      const r = await run([name, "--help"]);
      expect(r.code).toBe(0);
      expect(r.out).toContain(`usage: balora ${name} --model DIR`);
      for (const [key, spec] of Object.entries(cmd.flags)) {
        const line = r.out.split("\n").find((l) => l.trimStart().startsWith(`--${kebab(key)} `) || l.trim() === `--${kebab(key)}`);
        expect(line, `${name} --${kebab(key)}`).toBeDefined();
        const note = spec.required ? "(required)" : spec.type === "boolean" ? "(default: off)" : `(default: ${spec.default ?? "none"})`;
        expect(line, `${name} --${kebab(key)}`).toContain(note);
      }
      expect(r.out).toMatch(/--version +print the balora version/);
    }
    const g = await run(["generate", "--help"]);
    expect(g.out).toMatch(/--max-new-tokens N +.*\(default: 64\)/);
    expect(g.out).toMatch(/--top-p P +.*\(default: 1\)/);
  });

  it("--version prints the package version, before and after the command", async () => {
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
    for (const argv of [["--version"], ["forward", "--version"], ["init", "--model", "x", "--version"]]) {
      const r = await run(argv);
      expect(r.code, argv.join(" ")).toBe(0);
      expect(r.out.trim()).toBe(VERSION);
    }
  });

  it("usage mistakes: the message, the usage line, exit 2; no command at all prints the help on stderr", async () => {
    const u = await run(["frobnicate"]);
    expect(u.code).toBe(2);
    expect(u.err).toMatch(/unknown command 'frobnicate'/);
    const none = await run([]);
    expect(none.code).toBe(2);
    expect(none.out).toBe("");
    expect(none.err).toMatch(/usage: balora <command>/);
    const m = await run(["forward", "--model", "x"]);
    expect(m.code).toBe(2);
    expect(m.err.split("\n")[0]).toMatch(/missing required option --input/);
    expect(m.err.split("\n")[1]).toMatch(/^usage: balora forward/);
    const flag = await run(["forward", "--model", "x", "--input", "a", "--out", "b", "--bogus", "1"]);
    expect(flag.err).toMatch(/Unknown option '--bogus'/);
    const n = await run(["generate", "--model", "x", "--prompt", "hi", "--max-new-tokens", "lots"]);
    expect(n.err).toMatch(/--max-new-tokens must be a number, got 'lots'/);
    const missing = await run(["generate", "--model", "--prompt", "hi"]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/--model needs a value, got the option '--prompt'/);
  });

  it("negative numbers reach each flag's own range check (not parseArgs' 'ambiguous')", async () => {
    const cases: [string[], RegExp][] = [
      [
        ["init", "--model", llama, "--init", "lora", "--r", "-1", "--alpha", "8", "--out", join(dir, "x")],
        /--r must be an integer >= 1, got -1/,
      ],
      [["init", "--model", llama, "--init", "lora", "--r", "2", "--alpha", "-8", "--out", join(dir, "x")], /--alpha must be > 0, got -8/],
      [["generate", "--model", llama, "--prompt", "hi", "--seed", "-1"], /--seed must be an integer in \[0, 4294967295\], got -1/],
      [["generate", "--model", llama, "--prompt", "hi", "--seed", "4294967296"], /--seed must be an integer in \[0, 4294967295\]/],
      [["generate", "--model", llama, "--prompt", "hi", "--temperature", "-1"], /--temperature must be >= 0, got -1/],
      [["generate", "--model", llama, "--prompt", "hi", "--max-new-tokens", "-3"], /--max-new-tokens must be an integer >= 0, got -3/],
    ];
    for (const [argv, re] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.err).toMatch(re);
      expect(r.err).not.toMatch(/ambiguous/);
    }
    // a value that starts with one dash is a value
    const p = await run(["generate", "--model", join(dir, "nope"), "--prompt", "-x"]);
    expect(p.err).toMatch(/--model .*nope: not found/);
  });

  it("data errors are one line naming the path, exit 1, no usage line", async () => {
    const r = await run(["forward", "--model", "/nonexistent/model", "--input", "a.safetensors", "--out", join(dir, "b.safetensors")]);
    expect(r.code).toBe(1);
    expect(r.err).toBe("balora forward: --model /nonexistent/model: not found");
    const notDir = await run(["forward", "--model", join(llama, "config.json"), "--input", "a", "--out", join(dir, "b.safetensors")]);
    expect(notDir.err).toMatch(/^balora forward: --model .*config\.json is not a directory; --model takes a model directory/);
    expect(notDir.err.split("\n")).toHaveLength(1);
    const noConfig = await run(["forward", "--model", dir, "--input", "a", "--out", join(dir, "b.safetensors")]);
    expect(noConfig.err).toMatch(/config\.json: not found; a model directory needs config\.json/);
    expect(noConfig.err.split("\n")).toHaveLength(1);
  });

  it("BALORA_BACKEND=cpu runs without any Vulkan driver; an unknown backend is one clear line", async () => {
    const input = join(dir, "ids.safetensors");
    const { writeSafetensors } = await import("@balora/safetensors");
    await writeSafetensors(input, { input_ids: { dtype: "I32", shape: [1, 3], data: new Int32Array([1, 2, 3]) } });
    // No Vulkan ICD at all: WebGPU would find no adapter.
    const noGpu = { VK_ICD_FILENAMES: "/nonexistent/icd.json", VK_DRIVER_FILES: "/nonexistent/icd.json" };
    const cpu = await runBin(["forward", "--model", llama, "--input", input, "--out", join(dir, "cpu.safetensors")], {
      env: { ...noGpu, BALORA_BACKEND: "cpu" },
    });
    expect(cpu.err).toBe("");
    expect(cpu.code).toBe(0);
    const bogus = await runBin(["forward", "--model", llama, "--input", input, "--out", join(dir, "x.safetensors")], {
      env: { BALORA_BACKEND: "tpu" },
    });
    expect(bogus.code).toBe(1);
    expect(bogus.err.trim()).toBe("balora forward: BALORA_BACKEND=tpu is not a backend; use cpu or webgpu");
  });
});
