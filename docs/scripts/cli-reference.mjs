// The CLI reference pages, generated from the commands' own --help when the site is built, so the reference
// is exactly what `balora <command> --help` prints today.
import { execFile } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** `balora ARGS --help`'s stdout (the CPU backend: no device is opened for help). */
function help(root, args) {
  const bin = join(root, "packages", "ba-lora", "bin", "balora.mjs");
  const env = { ...process.env, BALORA_BACKEND: "cpu", NO_COLOR: "1" };
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [bin, ...args, "--help"], { encoding: "utf8", env, timeout: 60_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`balora ${args.join(" ")} --help failed: ${error.message} ${stderr}`)) : resolve(stdout.replace(/\s+$/, "")),
    ),
  );
}

const block = (text) => ["```text", text, "```"].join("\n");

/** The commands listed by `balora --help` ("  name   description" lines under "commands:"). */
export function commands(mainHelp) {
  const lines = mainHelp.split("\n");
  const start = lines.findIndex((l) => l.trim() === "commands:");
  const out = [];
  for (const line of lines.slice(start + 1)) {
    const m = line.match(/^ {2}([a-z][a-z-]*)\s{2,}(.+)$/);
    if (!m) break;
    out.push({ name: m[1], summary: m[2] });
  }
  return out;
}

/** Writes cli/index.md (the command list) and cli/<command>.md per command (helps run in parallel); returns the commands. */
export async function writeCliReference(root, dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const main = await help(root, []);
  const cmds = commands(main);
  if (cmds.length === 0) throw new Error("balora --help lists no commands");
  const texts = await Promise.all(cmds.map((c) => help(root, [c.name])));
  // Subcommands (eval gsm8k|perplexity) get a section only where their help differs from the command's.
  const subs = cmds.some((c) => c.name === "eval")
    ? await Promise.all(["gsm8k", "perplexity"].map(async (task) => [task, await help(root, ["eval", task])]))
    : [];
  const index = [
    "# CLI reference",
    "",
    "Generated from `balora --help` and each command's `--help` when this site was built.",
    "",
    "| command | what |",
    "|---|---|",
    ...cmds.map((c) => `| [\`balora ${c.name}\`](./${c.name}.md) | ${c.summary} |`),
    "",
    "## balora --help",
    "",
    block(main),
    "",
  ];
  writeFileSync(join(dir, "index.md"), index.join("\n"));
  cmds.forEach((c, i) => {
    const page = [`# balora ${c.name}`, "", c.summary, "", block(texts[i])];
    if (c.name === "eval") for (const [task, sub] of subs) if (sub !== texts[i]) page.push("", `## balora eval ${task}`, "", block(sub));
    page.push("");
    writeFileSync(join(dir, `${c.name}.md`), page.join("\n"));
  });
  return cmds;
}
