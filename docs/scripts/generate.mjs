// Writes the docs site's generated pages before VitePress builds it, so they never go stale: one page per
// package (its README + the import graph), the API from TSDoc (TypeDoc), the CLI reference from --help.
//
// usage: node docs/scripts/generate.mjs [--no-api]     (outputs are git-ignored: packages/, api/, cli/, examples/)
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeCliReference } from "./cli-reference.mjs";
import { importGraph, PACKAGES } from "./graph.mjs";

const docs = join(dirname(fileURLToPath(import.meta.url)), "..");
const root = join(docs, "..");
const started = performance.now();
const log = (msg) => console.error(`[docs] ${msg}`);

/** A README's links, rewritten for a page at docs/<dir>/<name>.md: sibling packages to their pages, docs/ to guides. */
export function rewriteLinks(markdown, fromRepoDir) {
  return markdown.replace(/(!?)\[([^\]]*)\]\(([^)\s]+)\)/g, (whole, bang, text, target) => {
    if (/^[a-z]+:|^#/.test(target)) return whole;
    // An image beside a README is not part of the site: its alt text and path stay as text.
    if (bang) return `${text} (\`${join(fromRepoDir, target).replace(/\\/g, "/")}\`)`;
    const [path, anchor] = target.split("#");
    const repoPath = join(fromRepoDir, path).replace(/\\/g, "/").replace(/\/$/, "");
    const hash = anchor ? `#${anchor}` : "";
    const pkg = repoPath.match(/^packages\/([a-z-]+)(\/README\.md)?$/);
    if (pkg && PACKAGES.includes(pkg[1])) return `[${text}](../packages/${pkg[1]}.md${hash})`;
    const guide = repoPath.match(/^docs\/(.+\.md)$/);
    if (guide) return `[${text}](../${guide[1]}${hash})`;
    const example = repoPath.match(/^examples\/([a-z-]+)(\/README\.md)?$/);
    if (example && existsSync(join(root, "examples", example[1], "README.md"))) return `[${text}](../examples/${example[1]}.md${hash})`;
    // Anything else (source files, scripts) is a path in the repository, not a page: keep the text and the path.
    return `${text} (\`${repoPath}\`)`;
  });
}

function write(file, text) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

function packagePages(withApi) {
  rmSync(join(docs, "packages"), { recursive: true, force: true });
  for (const name of PACKAGES) {
    const readme = readFileSync(join(root, "packages", name, "README.md"), "utf8");
    const api = withApi
      ? `\n\n## API reference\n\nGenerated from the TSDoc comments: [${"`"}@balora/${name}${"`"} API](../api/${name}.md).\n`
      : "";
    write(join(docs, "packages", `${name}.md`), `${rewriteLinks(readme, `packages/${name}`)}${api}`);
  }
  write(join(docs, "packages", "index.md"), importGraph(root));
  rmSync(join(docs, "examples"), { recursive: true, force: true });
  for (const example of ["browser", "custom-adapter"]) {
    const file = join(root, "examples", example, "README.md");
    if (existsSync(file)) write(join(docs, "examples", `${example}.md`), rewriteLinks(readFileSync(file, "utf8"), `examples/${example}`));
  }
}

/** Every package's API in one TypeDoc program (one type-check for all six), one Markdown page each: api/<package>.md. */
async function apiPages() {
  const { Application } = await import("typedoc");
  rmSync(join(docs, "api"), { recursive: true, force: true });
  const app = await Application.bootstrapWithPlugins({
    entryPoints: PACKAGES.map((name) => join(root, "packages", name, "src", "index.ts")),
    tsconfig: join(docs, "tsconfig.typedoc.json"),
    plugin: ["typedoc-plugin-markdown"],
    out: join(docs, "api"),
    readme: "none",
    name: "balora API",
    skipErrorChecking: true,
    excludePrivate: true,
    excludeInternal: true,
    entryFileName: "index",
    // One page per package (not per member): 7 pages instead of ~480, so the site builds in seconds.
    outputFileStrategy: "modules",
    hidePageHeader: true,
    hideBreadcrumbs: true,
    disableSources: true,
    sanitizeComments: true,
    logLevel: "Error",
    validation: { notExported: false, invalidLink: false, unusedMergeModuleWith: false },
  });
  const project = await app.convert();
  if (!project?.children) throw new Error("typedoc: could not convert the packages");
  // Modules are named by their path ("tensor/src"); the package's short name names its page.
  for (const module of project.children) module.name = module.name.replace(/\/src(\/index)?$/, "");
  const names = project.children.map((m) => m.name).sort();
  if (names.join() !== [...PACKAGES].sort().join())
    throw new Error(`typedoc: modules ${names.join(", ")}, expected ${PACKAGES.join(", ")}`);
  await app.generateOutputs(project);
  // Page titles name the npm package, as users import it.
  for (const name of names) {
    const file = join(docs, "api", `${name}.md`);
    writeFileSync(
      file,
      readFileSync(file, "utf8").replace(/^# .*\n/, `# @balora/${name} API\n\n[README and example](../packages/${name}.md)\n`),
    );
  }
  log(`api/: ${names.length} packages`);
}

const withApi = !process.argv.includes("--no-api");
packagePages(withApi);
await writeCliReference(root, join(docs, "cli"));
if (withApi) await apiPages();
log(`generated in ${((performance.now() - started) / 1000).toFixed(1)} s`);
