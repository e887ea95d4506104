// Link checks VitePress does not do: the repository README's relative links (into docs/ and packages/), and
// every #anchor of a relative .md link in the guides and generated pages against the target's headings.
//
// usage: node docs/scripts/check-links.mjs      (exit 1 with one line per broken link)
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const docs = join(dirname(fileURLToPath(import.meta.url)), "..");
const root = join(docs, "..");

/** VitePress's heading slug (@mdit-vue/shared slugify): accents dropped, punctuation to -, lower case. */
export function slugify(heading) {
  return heading
    .normalize("NFKD")
    .replace(/[\u0300-\u036F]/g, "")
    .replace(/[\s~`!@#$%^&*()\-_+=[\]{}|\\;:"'“”‘’<>,.?/]+/g, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^-+|-+$/g, "")
    .replace(/^(\d)/, "_$1")
    .toLowerCase();
}

function anchors(file) {
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
  const out = new Set();
  for (const m of text.matchAll(/^#{1,6}\s+(.+?)\s*$/gm)) out.add(slugify(m[1].replace(/`/g, "").replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")));
  return out;
}

/** Relative links of a markdown file outside code blocks: [text](target). */
function links(file) {
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
  return [...text.matchAll(/\[[^\]]*\]\(([^)\s]+)\)/g)].map((m) => m[1]).filter((t) => !/^[a-z]+:/.test(t));
}

const broken = [];
function check(file, { pagesOnly }) {
  for (const target of links(file)) {
    const [path, anchor] = target.split("#");
    const resolved = path ? join(dirname(file), decodeURIComponent(path)) : file;
    const where = `${relative(root, file)}: ${target}`;
    if (!existsSync(resolved)) {
      // VitePress resolves extension-less page links itself; README links must name real files or folders.
      if (pagesOnly && existsSync(`${resolved}.md`)) continue;
      broken.push(`${where} (no such file)`);
      continue;
    }
    if (anchor && resolved.endsWith(".md") && statSync(resolved).isFile() && !anchors(resolved).has(anchor))
      broken.push(`${where} (no heading #${anchor} in ${relative(root, resolved)})`);
  }
}

const mdFiles = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (["node_modules", ".vitepress", "api"].includes(e.name)) return [];
    const p = join(dir, e.name);
    return e.isDirectory() ? mdFiles(p) : e.name.endsWith(".md") ? [p] : [];
  });

check(join(root, "README.md"), { pagesOnly: false });
for (const f of mdFiles(docs)) check(f, { pagesOnly: true });
if (broken.length) {
  console.error(`docs: ${broken.length} broken link(s):\n  ${broken.join("\n  ")}`);
  process.exit(1);
}
console.error(`docs: links of README.md and ${mdFiles(docs).length} pages checked (files and #anchors)`);
