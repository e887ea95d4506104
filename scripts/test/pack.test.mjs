// The install test: every package's tarball installed with plain npm into a fresh project outside the
// workspace (no links), then used there as the READMEs tell users to: examples, plugin, variant, the bin.
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PACKAGE_DIRS, packAll } from "../check-packages.mjs";
import { bundleForBrowser, nodeReferences, runBundle } from "../lib/browser-bundle.mjs";
import { repoRoot } from "../lib/pnpm.mjs";
import { startScopeRegistry } from "./fixtures/scope-registry.mjs";

const FIXTURES = join(repoRoot, "scripts", "test", "fixtures");
const TSC = join(repoRoot, "node_modules", "typescript", "bin", "tsc");
const PLUGIN = "balora-regularizer-logit-l2";
// Not turbo tasks' inputs: scripts/check-packages.mjs sets BALORA_PACKED_DIR; BALORA_KEEP_PACK_PROJECT keeps the project to look at.
const { BALORA_BACKEND, BALORA_PACKED_DIR, BALORA_KEEP_PACK_PROJECT } = process.env;
const cpuOnly = BALORA_BACKEND === "cpu";

let project;
let packsDir;
let ownPacks = false;
let packs;
let demoModel;
let demoData;
let typeChecks;
const timings = {};

/** The environment of a user's shell: nothing npm or pnpm set for the workspace's own scripts. */
const userEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(npm_|PNPM_|INIT_CWD$)/i.test(k)));

/** Runs a command in the project; returns { status, stdout, stderr, seconds }. */
function inProject(cmd, args, { timeout = 170_000, env = {} } = {}) {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd: project, encoding: "utf8", timeout, env: { ...userEnv(), ...env }, maxBuffer: 32 << 20 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", seconds: (performance.now() - t0) / 1000 };
}

/** The same as inProject, without blocking this process (the scope registry answers from it); `cwd` given. */
function inDir(cwd, cmd, args, { timeout = 170_000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env: userEnv(), timeout });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

const failure = (r) => `exit ${r.status}\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`;
const resultOf = (r) =>
  JSON.parse(
    r.stdout
      .split("\n")
      .find((l) => l.startsWith("RESULT "))
      .slice("RESULT ".length),
  );

/** The examples (each package's examples/*.ts) copied into the project, and tsconfig files for three ways to compile them. */
function prepareTypeChecks() {
  for (const dir of PACKAGE_DIRS.filter((d) => d.startsWith("packages/"))) {
    const out = join(project, "examples", dir.replace("packages/", ""));
    mkdirSync(out, { recursive: true });
    for (const f of readdirSync(join(repoRoot, dir, "examples")))
      if (f.endsWith(".ts")) copyFileSync(join(repoRoot, dir, "examples", f), join(out, f));
  }
  const base = {
    target: "ES2022",
    lib: ["ES2023", "ESNext.Disposable"],
    types: ["node"],
    typeRoots: [join(repoRoot, "node_modules", "@types")],
    strict: true,
  };
  // A user's project (with the DOM lib, as a browser or mixed project has it: examples/browser.ts offer File
  // downloads); emits the JS run below.
  const node = {
    ...base,
    lib: [...base.lib, "DOM"],
    module: "NodeNext",
    moduleResolution: "NodeNext",
    skipLibCheck: true,
    rootDir: "examples",
    outDir: "out",
  };
  writeFileSync(join(project, "tsconfig.json"), JSON.stringify({ compilerOptions: node, include: ["examples"] }, null, 2));
  // Every entry point's .d.ts compiled without skipLibCheck, as Node and as a bundler with the browser condition sees it.
  const entries = packs.flatMap((p) => Object.keys(readManifest(p.name).exports).map((k) => p.name + k.slice(1)));
  writeFileSync(join(project, "entries.ts"), `${entries.map((e, i) => `export type * as E${i} from "${e}";`).join("\n")}\n`);
  const strict = { ...base, lib: [...base.lib, "DOM"], skipLibCheck: false, noEmit: true };
  const strictConfigs = {
    "tsconfig.node-types.json": { ...strict, module: "NodeNext", moduleResolution: "NodeNext" },
    "tsconfig.browser-types.json": { ...strict, module: "ESNext", moduleResolution: "Bundler", customConditions: ["browser"] },
  };
  for (const [file, compilerOptions] of Object.entries(strictConfigs))
    writeFileSync(join(project, file), JSON.stringify({ compilerOptions, files: ["entries.ts"] }, null, 2));
  return { entries, configs: ["tsconfig.json", ...Object.keys(strictConfigs)] };
}

beforeAll(() => {
  packsDir = BALORA_PACKED_DIR;
  if (!packsDir) {
    ownPacks = true;
    packsDir = mkdtempSync(join(tmpdir(), "balora-packs-"));
    packAll(packsDir);
  }
  packs = JSON.parse(readFileSync(join(packsDir, "packs.json"), "utf8"));
  project = mkdtempSync(join(tmpdir(), "balora-user-project-"));
  writeFileSync(
    join(project, "package.json"),
    `${JSON.stringify({ name: "balora-user-project", private: true, type: "module" }, null, 2)}\n`,
  );

  // The regularizer plugin, published as its own package: a tarball too.
  const plugin = inProject("npm", ["pack", join(FIXTURES, "regularizer-plugin"), "--pack-destination", packsDir, "--json"]);
  if (plugin.status !== 0) throw new Error(`npm pack of the plugin fixture failed: ${failure(plugin)}`);
  const pluginTarball = join(packsDir, JSON.parse(plugin.stdout)[0].filename);

  // Plain npm, tarballs only: webgpu (Dawn's binaries, ~50 MB) comes from npm's cache after the first run.
  const tarballs = [...packs.map((p) => p.tarball), pluginTarball];
  const install = inProject("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", ...tarballs], {
    timeout: 230_000,
  });
  timings.npmInstall = install.seconds;
  if (install.status !== 0) throw new Error(`npm install of the tarballs failed: ${failure(install)}`);
  const assets = join(project, "node_modules", "@balora", "ba-lora", "assets");
  demoModel = join(assets, "demo-model");
  demoData = join(assets, "demo-data", "train.jsonl");
  typeChecks = prepareTypeChecks();
}, 240_000);

afterAll(() => {
  if (timings.npmInstall !== undefined) console.error(`pack test: npm install ${timings.npmInstall.toFixed(1)} s`);
  if (BALORA_KEEP_PACK_PROJECT) console.error(`pack test: the project is kept at ${project}`);
  else if (project) rmSync(project, { recursive: true, force: true });
  if (ownPacks && packsDir) rmSync(packsDir, { recursive: true, force: true });
});

describe("the packages as npm installs them", () => {
  it("installs every package once, from its tarball, with every peer satisfied", () => {
    const installed = readdirSync(join(project, "node_modules", "@balora")).sort();
    expect(installed).toEqual(packs.map((p) => p.name.replace("@balora/", "")).sort());
    expect(installed).toHaveLength(PACKAGE_DIRS.length);
    // One copy of each: nothing nested under another package (a second @balora/tensor would be a second engine).
    const nested = [];
    for (const name of installed) {
      const dir = join(project, "node_modules", "@balora", name, "node_modules");
      if (existsSync(dir)) nested.push(`${name}: ${readdirSync(dir).join(", ")}`);
    }
    expect(nested).toEqual([]);
    for (const p of packs) {
      const manifest = JSON.parse(readFileSync(join(project, "node_modules", p.name, "package.json"), "utf8"));
      expect(JSON.stringify(manifest)).not.toMatch(/"(workspace|link):/);
    }
    const ls = inProject("npm", ["ls", "--all", "--json"]);
    expect(ls.status, failure(ls)).toBe(0);
    expect(JSON.parse(ls.stdout).problems ?? []).toEqual([]);
  });

  it("type-checks every package's examples against the installed types, and the types themselves strictly", async () => {
    const { configs, entries } = typeChecks;
    const runs = await Promise.all(configs.map((config) => inDir(project, process.execPath, [TSC, "-p", config])));
    runs.forEach((r, i) => expect(r.status, `tsc -p ${configs[i]}: ${failure(r)}`).toBe(0));
    expect(entries).toContain("@balora/tensor/kernel");
  });

  it("bundles every package for the browser from the installed tarballs: no Node-only import is reached", async () => {
    // The `browser` conditions as published: safetensors' and ba-lora's entry points, tensor's #dawn stub.
    const names = packs.map((p) => p.name);
    const imports = names.map((n, i) => `import * as P${i} from "${n}";`).join("\n");
    const code = `${imports}\nexport { ${names.map((_, i) => `P${i}`).join(", ")} };\n`;
    const bundle = await bundleForBrowser({ code, root: project });
    expect(bundle.nodeImports).toEqual([]);
    expect(nodeReferences(bundle.code)).toEqual([]);
    expect(bundle.modules.some((m) => m.includes("node_modules/@balora/tensor/dist/backend/dawn-browser.js"))).toBe(true);
    // It runs with no Node globals, and its exports are the packages' (the LoRA kit's variants are registered).
    const exported = runBundle(bundle);
    const of = (name) => exported[`P${names.indexOf(name)}`];
    expect(of("@balora/lora").registeredVariants()).toEqual(expect.arrayContaining(["lora", "dora"]));
    expect(typeof of("@balora/ba-lora").Trainer).toBe("function");
    expect(of("@balora/ba-lora").main).toBeUndefined(); // the CLI entry point is Node-only
  });

  it.skipIf(cpuOnly)("runs the README examples on WebGPU through the Dawn binding npm installed", () => {
    copyFileSync(join(FIXTURES, "run-examples.mjs"), join(project, "run-examples.mjs"));
    if (!existsSync(join(project, "out"))) inProject(process.execPath, [TSC, "-p", "tsconfig.json"]); // when run alone (-t)
    const r = inProject(process.execPath, ["run-examples.mjs", demoModel]);
    expect(r.status, failure(r)).toBe(0);
    const out = resultOf(r);
    expect(out.tensor).toBeLessThan(1e-4); // y = 3x − 1 fitted
    expect(out.safetensors).toBe(20); // 2 × (0.5 − 1.25 + 3 + 7.75), f32 and bf16 copies
    expect(out.lora).toBeLessThan(1e-5); // the peft-format adapter reloaded on the original base = the trained model
    expect(Math.abs(out.regularizers.fused - out.regularizers.materialised)).toBeLessThan(1e-5 * Math.abs(out.regularizers.materialised));
    expect(typeof out.models).toBe("string");
    expect(out.baLora).toEqual([0, 0]);
    for (const f of ["adapter_config.json", "adapter_model.safetensors"]) expect(existsSync(join(out.work, "lora-adapter", f))).toBe(true);
    const peft = JSON.parse(readFileSync(join(out.work, "lora-adapter", "adapter_config.json"), "utf8"));
    // PiSSA converted to plain LoRA for the original base: rank and alpha double (peft's conversion).
    expect(peft).toMatchObject({ peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: expect.arrayContaining(["q_proj", "v_proj"]) });
  });

  it("trains with a regularizer package selected by name (`balora train --plugin`), its term in every step's loss", () => {
    writeFileSync(join(project, "plugin.json"), JSON.stringify({ regularizers: { terms: { logit_l2: { lambda: 0.1 } } } }));
    const args = (out, ...extra) => [
      "--no",
      "--",
      "balora",
      "train",
      ...["--model", demoModel, "--data", demoData, "--out", out, "--config", "plugin.json"],
      ...["--max-steps", "3", "--r", "4", "--alpha", "8", "--lr", "1e-3", "--quiet", ...extra],
    ];
    const r = inProject("npx", args("run-plugin", "--plugin", PLUGIN));
    expect(r.status, failure(r)).toBe(0);
    const rows = readFileSync(join(project, "run-plugin", "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map(JSON.parse);
    expect(rows.map((row) => row.step)).toEqual([1, 2, 3]);
    for (const row of rows) {
      expect(row.lambda_logit_l2).toBe(0.1);
      expect(row.logit_l2).toBeGreaterThan(0);
      // The step's loss is the task loss plus each term times its λ: the plugin's term is in the objective.
      const sum = row.task_loss + row.lambda1 * row.consistency + row.lambda2 * row.diversity + row.lambda3 * row.svd + 0.1 * row.logit_l2;
      expect(Math.abs(row.loss - sum)).toBeLessThan(1e-5 * Math.abs(row.loss));
    }
    // Without the package the name means nothing: the same run stops with one line naming the term.
    const without = inProject("npx", args("run-without"));
    expect(without.status).not.toBe(0);
    expect(without.stderr).toMatch(/regularizer "logit_l2" is not registered/);
  });

  it.skipIf(cpuOnly)("trains, saves, reloads and merges the custom adapter variant package on the demo model", () => {
    copyFileSync(join(FIXTURES, "custom-adapter.mjs"), join(project, "custom-adapter.mjs"));
    const r = inProject(process.execPath, ["custom-adapter.mjs", demoModel, join(project, "gated-adapter")]);
    expect(r.status, failure(r)).toBe(0);
    const out = resultOf(r);
    expect(out.variants).toContain("gated-lora");
    expect(out.variant).toBe("gated-lora");
    expect(out.after).toBeLessThan(out.before);
    expect(Math.abs(out.reloaded - out.after)).toBeLessThan(1e-5 * out.after);
    expect(Math.abs(out.merged - out.after)).toBeLessThan(1e-4 * out.after);
    expect(out.names.some((n) => n.endsWith(".lora_gate"))).toBe(true);
    expect(out.names.some((n) => n.endsWith(".lora_A.weight"))).toBe(true);
  });

  it("installs `npm i @balora/ba-lora` by name, @balora/tensor with it (npm installs peers)", async () => {
    const registry = await startScopeRegistry(packs.filter((p) => p.name !== "@balora/example-custom-adapter"));
    const fresh = mkdtempSync(join(tmpdir(), "balora-npm-i-"));
    try {
      writeFileSync(join(fresh, "package.json"), `${JSON.stringify({ name: "balora-npm-i", private: true, type: "module" })}\n`);
      const flags = [`--@balora:registry=${registry.url}`, "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"];
      const install = await inDir(fresh, "npm", ["install", "@balora/ba-lora", ...flags], { timeout: 230_000 });
      expect(install.status, failure(install)).toBe(0);
      expect(Object.keys(JSON.parse(readFileSync(join(fresh, "package.json"), "utf8")).dependencies)).toEqual(["@balora/ba-lora"]);
      const installed = readdirSync(join(fresh, "node_modules", "@balora")).sort();
      expect(installed).toEqual(["ba-lora", "lora", "models", "regularizers", "safetensors", "tensor"]);
      expect(installed.filter((n) => existsSync(join(fresh, "node_modules", "@balora", n, "node_modules")))).toEqual([]);
      const version = await inDir(fresh, "npx", ["--no", "--", "balora", "--version"]);
      expect(version.stdout.trim(), failure(version)).toBe(packs.find((p) => p.name === "@balora/ba-lora").version);
    } finally {
      await registry.close();
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  it("runs `npx balora demo --help` and `balora --version` from the installed bin", () => {
    const help = inProject("npx", ["--no", "--", "balora", "demo", "--help"]);
    expect(help.status, failure(help)).toBe(0);
    expect(help.stdout).toMatch(/^usage: balora demo/);
    const version = inProject("npx", ["--no", "--", "balora", "--version"]);
    expect(version.stdout.trim()).toBe(packs.find((p) => p.name === "@balora/ba-lora").version);
  });
});

function readManifest(name) {
  return JSON.parse(readFileSync(join(project, "node_modules", name, "package.json"), "utf8"));
}
