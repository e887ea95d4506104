// The repository scripts this package owns: Dawn's warning lines filtered (bin and test logs), no
// colour codes in piped turbo output, `npm run bench -- --help`, and npm/pnpm errors not silenced.
import { spawnSync } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { filterDawnNoise, isDawnNoise } from "../bin/noise.mjs";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const DAWN = [
  "Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.",
  "Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.",
];

describe("Dawn's native warnings", () => {
  it("are recognised exactly: bare, after turbo's task prefix, with colour codes; nothing else is", () => {
    for (const line of DAWN) {
      expect(isDawnNoise(line)).toBe(true);
      expect(isDawnNoise(`@balora/tensor:test: ${line}`)).toBe(true);
      expect(isDawnNoise(`\x1b[36m@balora/tensor:test: \x1b[0m${line}`)).toBe(true);
    }
    for (const line of [
      "Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 because of something else.",
      "balora forward: --out /dev/null is a character device",
      "Warning: vkCreateInstance: Found no drivers!",
      `${DAWN[0]} and more`,
      "",
    ])
      expect(isDawnNoise(line), line).toBe(false);
  });

  it("are dropped from a stream; every other line passes through in order", async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    let got = "";
    output.on("data", (d) => (got += d));
    const done = filterDawnNoise(input, output);
    input.end(`first\n${DAWN[0]}\n@balora/models:test: ${DAWN[1]}\nsecond\nlast, no newline`);
    await done;
    expect(got).toBe("first\nsecond\nlast, no newline\n");
  });
});

describe("repository scripts", () => {
  it("`bench --help` prints the usage and exits without building or benchmarking; unknown arguments are refused", () => {
    const help = spawnSync(process.execPath, ["scripts/bench.mjs", "--help"], { cwd: root, encoding: "utf8", timeout: 20_000 });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: npm run bench -- \[--json\] \[matmul\|dispatch\|all\]/);
    expect(help.stderr).toBe("");
    const bad = spawnSync(process.execPath, ["scripts/bench.mjs", "--jsno"], { cwd: root, encoding: "utf8", timeout: 20_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^bench: unknown argument '--jsno'/);
    expect(bad.stdout).toBe("");
  });

  it("turbo output piped into a file has no colour codes, even with FORCE_COLOR inherited; its exit code comes through", () => {
    // --dry-run: turbo plans and prints (in colour, if it may) without running tasks
    const r = spawnSync(process.execPath, ["scripts/turbo.mjs", "run", "lint", "--filter=@balora/safetensors", "--dry-run"], {
      cwd: root,
      encoding: "utf8",
      timeout: 60_000,
      env: { ...process.env, FORCE_COLOR: "1" },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("@balora/safetensors#lint");
    // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for ESC
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/\x1b\[/);
    const missing = spawnSync(process.execPath, ["scripts/turbo.mjs", "run", "no-such-task", "--filter=@balora/safetensors"], {
      cwd: root,
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(missing.status).not.toBe(0);
    expect(`${missing.stdout}${missing.stderr}`).toMatch(/no-such-task/);
  }, 90_000);

  it("pnpm's errors show although npm is silent: an outdated lockfile is named with the reason", async () => {
    // A copy of the root manifest whose turbo range no longer matches pnpm-lock.yaml.
    const dir = await mkdtemp(join(tmpdir(), "balora-lockfile-"));
    try {
      for (const f of [".npmrc", "pnpm-lock.yaml", "pnpm-workspace.yaml"]) await cp(join(root, f), join(dir, f));
      await cp(join(root, "scripts"), join(dir, "scripts"), { recursive: true });
      const pkg = JSON.parse(await readFile(join(root, "package.json"), "utf8"));
      pkg.devDependencies.turbo = "^2.0.0-outdated";
      await writeFile(join(dir, "package.json"), JSON.stringify(pkg));
      const r = spawnSync("npm", ["run", "lint"], { cwd: dir, encoding: "utf8", timeout: 120_000 });
      expect(r.status).not.toBe(0);
      expect(`${r.stdout}${r.stderr}`).toMatch(/ERR_PNPM_OUTDATED_LOCKFILE[\s\S]*turbo/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 150_000);

  it("`npm run <script>` prints no npm banner on stdout (JSON consumers read it as is)", () => {
    const r = spawnSync("npm", ["run", "bench", "--", "--help"], { cwd: root, encoding: "utf8", timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^usage: npm run bench/);
    expect(r.stdout).not.toMatch(/^> /m);
  }, 150_000);
});
