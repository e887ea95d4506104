// Bundles an entry for the browser with the workspace bundler (Vite 8, rolldown inside) the way an app
// would, records every node:/builtin/`webgpu` import it reaches, and runs a bundle with no Node globals.
import { isBuiltin } from "node:module";
import { build } from "vite";

const VIRTUAL_ENTRY = "virtual:balora-browser-entry";

/** Node-only imports: a builtin (node:fs, fs, ...) or Dawn's npm package. */
const isNodeOnly = (id) => isBuiltin(id) || id === "webgpu" || id.startsWith("webgpu/");

/**
 * Bundles `code` (an ES module: its imports resolve from `root`) as an IIFE assigning its exports to
 * `globalName`, with Vite's client (browser) conditions. Returns the code, the Node-only imports seen
 * while resolving (before tree-shaking, so unused exports count too), and the modules bundled.
 */
export async function bundleForBrowser({ code, root, alias = {}, globalName = "BrowserBundle" }) {
  const nodeImports = [];
  const plugin = {
    name: "balora-browser-check",
    enforce: "pre",
    resolveId(source, importer) {
      if (source.endsWith(VIRTUAL_ENTRY)) return `\0${VIRTUAL_ENTRY}`; // lib mode makes the entry a path under root
      if (!isNodeOnly(source)) return null;
      nodeImports.push(`${source} (imported by ${importer ?? "the entry"})`);
      return { id: source, external: true }; // recorded, and left out so the build goes on to find them all
    },
    load(id) {
      return id === `\0${VIRTUAL_ENTRY}` ? code : null;
    },
  };
  const result = await build({
    configFile: false,
    envFile: false,
    logLevel: "silent",
    root,
    resolve: { alias },
    plugins: [plugin],
    build: {
      write: false,
      minify: false,
      reportCompressedSize: false,
      copyPublicDir: false,
      target: "es2022",
      lib: { entry: VIRTUAL_ENTRY, formats: ["iife"], name: globalName, fileName: "bundle" },
    },
  });
  const outputs = (Array.isArray(result) ? result : [result]).flatMap((r) => r.output);
  const chunks = outputs.filter((o) => o.type === "chunk");
  const modules = chunks.flatMap((c) => Object.keys(c.modules));
  return { code: chunks.map((c) => c.code).join("\n"), nodeImports, modules, globalName };
}

/** Lines of bundled code that would load Node-only code at run time: any node: specifier, require(), importing `webgpu`. */
export function nodeReferences(code) {
  const patterns = [/["'`]node:[a-z_/]+["'`]/, /\brequire\s*\(/, /(?:\bfrom\s*|\bimport\s*\(\s*)["'`]webgpu(?:\/[^"'`]*)?["'`]/];
  return code.split("\n").filter((line) => patterns.some((p) => p.test(line)));
}

/** Node's own globals, hidden from the bundle: browser code must run without them. */
const NODE_GLOBALS = ["process", "Buffer", "require", "module", "exports", "global", "__dirname", "__filename", "setImmediate"];

/** Runs an IIFE bundle with Node's globals shadowed as undefined; returns its exports. */
export function runBundle({ code, globalName }) {
  const run = new Function(...NODE_GLOBALS, `"use strict";\n${code}\nreturn ${globalName};`);
  return run(...NODE_GLOBALS.map(() => undefined));
}
