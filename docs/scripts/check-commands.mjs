// Every `balora <command> --flag` written in the README's and the guides' code blocks must be a flag that
// command's --help lists (read from the generated cli/ pages), so the docs cannot drift from the CLI.
//
// usage: node docs/scripts/check-commands.mjs      (after generate.mjs; exit 1 with one line per unknown flag)
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const docs = join(dirname(fileURLToPath(import.meta.url)), "..");
const root = join(docs, "..");
const GLOBAL = new Set(["--help", "--version"]);

/** command → the flags its generated reference page lists. */
function knownFlags() {
  const dir = join(docs, "cli");
  if (!existsSync(dir)) throw new Error("docs/cli/ is missing: run node docs/scripts/generate.mjs first");
  const out = {};
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".md") && f !== "index.md"))
    out[f.replace(/\.md$/, "")] = new Set(readFileSync(join(dir, f), "utf8").match(/--[a-z0-9][a-z0-9-]*/g) ?? []);
  return out;
}

/** `balora ...` command lines inside fenced code blocks, with `\` continuations joined. */
function commandLines(file) {
  const text = readFileSync(file, "utf8");
  const lines = [];
  for (const block of text.matchAll(/```(?:sh|bash|shell|text)?\n([\s\S]*?)```/g)) {
    const joined = block[1].replace(/\\\n\s*/g, " ");
    for (const line of joined.split("\n"))
      for (const m of line.matchAll(/\bbalora\s+([a-z]+)([^|&;#]*)/g)) lines.push({ cmd: m[1], rest: m[2] });
  }
  return lines;
}

const flags = knownFlags();
const problems = [];
const files = [
  join(root, "README.md"),
  ...readdirSync(docs)
    .filter((f) => f.endsWith(".md"))
    .map((f) => join(docs, f)),
];
let checked = 0;
for (const file of files)
  for (const { cmd, rest } of commandLines(file)) {
    if (!flags[cmd]) {
      problems.push(`${relative(root, file)}: balora ${cmd}: no such command`);
      continue;
    }
    for (const flag of rest.match(/(?<=\s|^)--[a-z0-9][a-z0-9-]*/g) ?? []) {
      checked++;
      if (!flags[cmd].has(flag) && !GLOBAL.has(flag)) problems.push(`${relative(root, file)}: balora ${cmd} ${flag}: not in its --help`);
    }
  }
if (problems.length) {
  console.error(`docs: ${problems.length} command(s) or flag(s) that balora does not have:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.error(`docs: ${checked} flags of balora commands in README.md and the guides exist`);
