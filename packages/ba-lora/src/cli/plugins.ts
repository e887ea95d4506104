// Regularizer plugins for `--plugin NAME` and a config's `plugins` list: a package resolved from the user's
// working directory (not from where balora is installed), or a path to a .js/.mjs file or package directory.
import { readFile, stat } from "node:fs/promises";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { loadRegularizerPlugin } from "@balora/regularizers";
import { CliError } from "./args.js";

// The config file reader lives beside the plugins it lists; re-exported for the commands that take both.
export { REGULARIZER_KEYS, readRunConfig } from "./run-config.js";

/** npm's package name rule (lowercase, optional @scope/). */
const PACKAGE_NAME = /^(@[a-z0-9~-][a-z0-9._~-]*\/)?[a-z0-9~-][a-z0-9._~-]*$/;

const isPath = (name: string): boolean =>
  name === "." || name === ".." || /^\.\.?[/\\]/.test(name) || isAbsolute(name) || /\.m?js$/.test(name) || name.startsWith("file:");

async function kind(path: string): Promise<"file" | "dir" | null> {
  try {
    const st = await stat(path);
    return st.isDirectory() ? "dir" : st.isFile() ? "file" : null;
  } catch {
    return null;
  }
}

/** The first target of an exports entry under Node's conditions for `import` (import, node, default; in the entry's own order). */
function exportTarget(entry: unknown): string | null {
  if (typeof entry === "string") return entry;
  if (Array.isArray(entry)) {
    for (const e of entry) {
      const t = exportTarget(e);
      if (t) return t;
    }
    return null;
  }
  if (entry && typeof entry === "object") {
    for (const [cond, e] of Object.entries(entry)) {
      if (cond !== "import" && cond !== "node" && cond !== "default") continue;
      const t = exportTarget(e);
      if (t) return t;
    }
  }
  return null;
}

/** The entry file of a package directory: `exports["."]` (or a string / conditions `exports`), else `module`, `main`, index.js. */
async function packageEntry(plugin: string, dir: string): Promise<string> {
  const manifest = join(dir, "package.json");
  let pkg: Record<string, unknown> = {};
  if ((await kind(manifest)) === "file") {
    try {
      pkg = JSON.parse(await readFile(manifest, "utf8"));
    } catch (e) {
      throw new CliError(`plugin ${plugin}: ${manifest} is not valid JSON (${(e as Error).message}); reinstall the package`);
    }
  }
  let target: string | null;
  const ex = pkg.exports;
  if (ex !== undefined && ex !== null) {
    const conditions = typeof ex === "object" && !Array.isArray(ex) && !Object.keys(ex).some((k) => k.startsWith("."));
    const dot = typeof ex === "string" || Array.isArray(ex) || conditions ? ex : (ex as Record<string, unknown>)["."];
    target = exportTarget(dot);
    if (!target)
      throw new CliError(
        `plugin ${plugin}: ${manifest} has no "exports" entry "." with an "import" or "default" condition; ` +
          "the package must export its entry file",
      );
  } else target = (typeof pkg.module === "string" && pkg.module) || (typeof pkg.main === "string" && pkg.main) || "index.js";
  const file = resolve(dir, target);
  if ((await kind(file)) !== "file")
    throw new CliError(`plugin ${plugin}: ${manifest} points at ${target}, which does not exist (is the package built?); reinstall it`);
  return file;
}

/** node_modules/<name> in `from` or a directory above it, or null. */
async function findPackage(name: string, from: string): Promise<string | null> {
  let dir = resolve(from);
  for (;;) {
    const p = join(dir, "node_modules", name);
    if ((await kind(p)) === "dir") return p;
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

/** The directory of balora's own package (a plugin installed beside balora, e.g. globally, is found there too). */
const BALORA_DIR = fileURLToPath(new URL("../..", import.meta.url));

/** The file a plugin specifier names: a package in node_modules (from `cwd` up, then beside balora), or a path from `cwd`. */
export async function resolvePlugin(name: string, cwd = process.cwd()): Promise<string> {
  if (typeof name !== "string" || name.trim() === "") throw new CliError("plugin: empty name; give a package name or a path to a .js file");
  if (isPath(name)) {
    const path = name.startsWith("file:") ? fileURLToPath(name) : resolve(cwd, name);
    const k = await kind(path);
    if (k === null) throw new CliError(`plugin ${name}: ${path} not found; give an existing .js/.mjs file or package directory`);
    if (k === "dir") return packageEntry(name, path);
    if (!/\.m?js$/.test(path))
      throw new CliError(`plugin ${name}: ${path} is not a .js or .mjs file (an ES module that registers regularizers)`);
    return path;
  }
  if (!PACKAGE_NAME.test(name))
    throw new CliError(`plugin ${name}: not a package name or a path (write ./${name} for a file in this directory)`);
  const dir = (await findPackage(name, cwd)) ?? (await findPackage(name, BALORA_DIR));
  if (!dir)
    throw new CliError(
      `plugin ${name}: not installed (no node_modules/${name} in ${resolve(cwd)} or above); npm i ${name} next to your project`,
    );
  return packageEntry(name, dir);
}

/**
 * Loads each plugin (resolved by `resolvePlugin` from `cwd`), whose import registers regularizers with
 * @balora/regularizers; returns the names registered, in order. Loading one again returns its names.
 * Every failure is one CliError naming the plugin and the fix.
 */
export async function loadPlugins(names: string[], cwd = process.cwd()): Promise<string[]> {
  const registered: string[] = [];
  for (const name of names) {
    const file = await resolvePlugin(name, cwd);
    let importError: unknown = null;
    const importer = async (url: string): Promise<unknown> => {
      try {
        return await import(url);
      } catch (e) {
        importError = e;
        throw e;
      }
    };
    try {
      for (const r of await loadRegularizerPlugin(pathToFileURL(file).href, importer)) if (!registered.includes(r)) registered.push(r);
    } catch (e) {
      if (importError) {
        const why = ((importError as Error)?.message ?? String(importError)).split("\n")[0];
        throw new CliError(`plugin ${name}: importing ${file} failed (${why}); fix or reinstall the package`);
      }
      const why = (e as Error).message.split("\n")[0];
      if (/registered no regularizer/.test(why))
        throw new CliError(
          `plugin ${name}: ${file} registered no regularizer on import; a plugin must call registerRegularizer from @balora/regularizers`,
        );
      throw new CliError(`plugin ${name}: ${why}`);
    }
  }
  return registered;
}
