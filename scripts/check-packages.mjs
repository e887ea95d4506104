// The packages as npm users get them: packs each one (pnpm pack, which rewrites workspace: ranges), lints every
// tarball with publint, checks its manifest and files, then runs scripts/test/pack.test.mjs on the tarballs.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { publint } from "publint";
import { formatMessage } from "publint/utils";
import { pnpmCommand, repoRoot } from "./lib/pnpm.mjs";

/** Every package a user can install, in dependency order (the custom adapter is the example of a third-party variant). */
export const PACKAGE_DIRS = [
  "packages/safetensors",
  "packages/tensor",
  "packages/lora",
  "packages/models",
  "packages/regularizers",
  "packages/ba-lora",
  "examples/custom-adapter",
];

/** Packages that take @balora/tensor as a peer (one engine instance, shared with the user's own code). */
const TENSOR_PEERS = ["@balora/lora", "@balora/models", "@balora/regularizers", "@balora/ba-lora", "@balora/example-custom-adapter"];
/** What a tarball may hold: the build, the sources its source maps point at, the CLI, demo assets, README, LICENSE. */
const ALLOWED = /^(package\.json|README\.md|LICENSE|CHANGELOG\.md|(dist|src|bin|assets)\/.+)$/;
const FORBIDDEN = /(^|\/)(test|tests|bench|examples|fixtures|node_modules|\.turbo)\/|\.tsbuildinfo$|\.test\.[cm]?[jt]s$/;
const DEP_FIELDS = ["dependencies", "peerDependencies", "optionalDependencies", "devDependencies"];

/**
 * Packs every package of PACKAGE_DIRS into `dest` with the pinned pnpm (one recursive call) and unpacks each
 * tarball beside it; returns { name, version, dir, tarball, unpacked, files } per package, in PACKAGE_DIRS
 * order, and writes the list to dest/packs.json.
 */
export function packAll(dest) {
  mkdirSync(dest, { recursive: true });
  const [cmd, ...pre] = pnpmCommand();
  const filters = PACKAGE_DIRS.flatMap((d) => ["--filter", `./${d}`]);
  const args = [...pre, "--loglevel=error", "-r", ...filters, "pack", "--pack-destination", dest, "--json"];
  const r = spawnSync(cmd, args, { cwd: repoRoot, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`pnpm pack failed (exit ${r.status}):\n${r.stderr}${r.stdout}`);
  const packed = JSON.parse(r.stdout);
  const byName = new Map(packed.map((p) => [p.name, p]));
  const packs = PACKAGE_DIRS.map((dir) => {
    const name = JSON.parse(readFileSync(join(repoRoot, dir, "package.json"), "utf8")).name;
    const p = byName.get(name);
    if (!p) throw new Error(`pnpm pack wrote no tarball for ${name} (${dir})`);
    const unpacked = join(dest, "unpacked", name.replace("/", "__"));
    mkdirSync(unpacked, { recursive: true });
    const tar = spawnSync("tar", ["-xzf", p.filename, "-C", unpacked, "--strip-components=1"], { encoding: "utf8" });
    if (tar.status !== 0) throw new Error(`could not unpack ${p.filename}: ${tar.stderr}`);
    return { name, version: p.version, dir, tarball: p.filename, unpacked, files: p.files.map((f) => f.path).sort() };
  });
  writeFileSync(join(dest, "packs.json"), `${JSON.stringify(packs, null, 2)}\n`);
  return packs;
}

/** Explicit `any` in the package's .d.ts files (the TypeScript scanner, so comments and strings do not count). */
function anyInDeclarations(pkg) {
  const ts = createRequire(import.meta.url)("typescript");
  const found = [];
  for (const file of pkg.files.filter((f) => f.endsWith(".d.ts") || f.endsWith(".d.mts"))) {
    const text = readFileSync(join(pkg.unpacked, file), "utf8");
    const scanner = ts.createScanner(ts.ScriptTarget.Latest, true, ts.LanguageVariant.Standard, text);
    for (let t = scanner.scan(); t !== ts.SyntaxKind.EndOfFileToken; t = scanner.scan()) {
      if (t !== ts.SyntaxKind.AnyKeyword && !(t === ts.SyntaxKind.Identifier && scanner.getTokenText() === "any")) continue;
      const line = text.slice(0, scanner.getTokenStart()).split("\n").length;
      found.push(`${file}:${line}`);
    }
  }
  return found;
}

/** Every problem of one packed package, as lines naming the file or field and the fix. */
export async function problemsOf(pkg) {
  const problems = [];
  const notes = [];
  const manifest = JSON.parse(readFileSync(join(pkg.unpacked, "package.json"), "utf8"));

  const bytes = readFileSync(pkg.tarball);
  const lint = await publint({ pack: { tarball: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) } });
  for (const m of lint.messages) {
    const line = `publint ${m.type} ${m.code}: ${formatMessage(m, lint.pkg)}`;
    (m.type === "suggestion" ? notes : problems).push(line);
  }

  for (const field of DEP_FIELDS)
    for (const [dep, range] of Object.entries(manifest[field] ?? {}))
      if (/^(workspace|link|file|portal):/.test(range))
        problems.push(`${field}.${dep} is "${range}" in the packed package.json (a workspace-only reference); pack with pnpm`);
  if (TENSOR_PEERS.includes(pkg.name)) {
    if (!manifest.peerDependencies?.["@balora/tensor"])
      problems.push("@balora/tensor must be a peerDependency (one engine instance per app)");
    if (manifest.dependencies?.["@balora/tensor"]) problems.push("@balora/tensor is in dependencies; list it only in peerDependencies");
  }
  if (manifest.license !== "MIT") problems.push(`license is ${JSON.stringify(manifest.license)}, expected "MIT"`);

  for (const need of ["package.json", "README.md", "LICENSE"])
    if (!pkg.files.includes(need)) problems.push(`${need} is missing from the tarball; add it to "files"`);
  for (const f of pkg.files)
    if (!ALLOWED.test(f) || FORBIDDEN.test(f)) problems.push(`${f} should not be published; narrow "files" in package.json`);
  const sources = new Set(pkg.files.filter((f) => f.startsWith("src/")));
  for (const f of pkg.files.filter((f) => f.startsWith("dist/") && f.endsWith(".js")))
    if (!sources.has(f.replace(/^dist\//, "src/").replace(/\.js$/, ".ts")))
      problems.push(`${f} has no source (a stale build output); rebuild: rm -rf ${pkg.dir}/dist && pnpm --filter ${pkg.name} build`);
  for (const at of anyInDeclarations(pkg)) problems.push(`${at}: \`any\` in the public types; give it a real type (or unknown)`);
  return { problems, notes, manifest };
}

/** Changesets that name a package changesets cannot version (unknown, or private), or a bump that is not one. */
export function changesetProblems() {
  const dir = join(repoRoot, ".changeset");
  const published = new Set(
    PACKAGE_DIRS.map((d) => JSON.parse(readFileSync(join(repoRoot, d, "package.json"), "utf8")))
      .filter((m) => !m.private)
      .map((m) => m.name),
  );
  const problems = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".md") && f !== "README.md")) {
    const front = readFileSync(join(dir, file), "utf8").match(/^---\r?\n([\s\S]*?)^---\s*$/m);
    if (!front) {
      problems.push(`.changeset/${file}: no front matter (---, "package": patch|minor|major lines, ---)`);
      continue;
    }
    for (const line of front[1].split(/\r?\n/).filter((l) => l.trim())) {
      const m = line.match(/^\s*["']?([^"':]+)["']?\s*:\s*(\S+)\s*$/);
      if (!m) problems.push(`.changeset/${file}: cannot read "${line}"`);
      else if (!published.has(m[1])) problems.push(`.changeset/${file}: ${m[1]} is not a published package (${[...published].join(", ")})`);
      else if (!["patch", "minor", "major"].includes(m[2]))
        problems.push(`.changeset/${file}: ${m[1]}: "${m[2]}" is not patch, minor or major`);
    }
  }
  return problems;
}

const kB = (n) => `${(n / 1024).toFixed(1)} kB`;

function dirSize(dir) {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true }))
    total += e.isDirectory() ? dirSize(join(dir, e.name)) : statSync(join(dir, e.name)).size;
  return total;
}

async function main() {
  const installToo = !process.argv.includes("--no-install");
  const dest = mkdtempSync(join(tmpdir(), "balora-packs-"));
  let failed = false;
  try {
    const t0 = performance.now();
    const packs = packAll(dest);
    console.error(`check-packages: packed ${packs.length} packages in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    for (const pkg of packs) {
      const { problems, notes } = await problemsOf(pkg);
      const size = `${kB(statSync(pkg.tarball).size)} packed, ${kB(dirSize(pkg.unpacked))} unpacked, ${pkg.files.length} files`;
      console.error(`  ${problems.length ? "✗" : "✓"} ${pkg.name}@${pkg.version}: ${size}`);
      for (const n of notes) console.error(`      note: ${n}`);
      for (const p of problems) console.error(`      ${p}`);
      failed ||= problems.length > 0;
    }
    const changesets = changesetProblems();
    for (const p of changesets) console.error(`  ✗ ${p}`);
    failed ||= changesets.length > 0;
    if (failed) {
      console.error("check-packages: fix the problems above (publint docs: https://publint.dev/rules)");
      return 1;
    }
    if (!installToo) return 0;
    // The install test: the tarballs in a fresh project outside the workspace, used as a user would.
    const vitest = join(repoRoot, "node_modules", ".bin", "vitest");
    const config = relative(repoRoot, join(repoRoot, "scripts", "test", "vitest.config.mjs"));
    const r = spawnSync(vitest, ["run", "--config", config], {
      cwd: repoRoot,
      stdio: "inherit",
      env: { ...process.env, BALORA_PACKED_DIR: dest },
    });
    return r.status ?? 1;
  } finally {
    if (existsSync(dest)) rmSync(dest, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) process.exitCode = await main();
