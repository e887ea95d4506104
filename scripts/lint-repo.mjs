// Repository-wide checks that no single package owns: biome (lint + format) on the scripts, no
// source line longer than 140 characters (biome cannot wrap strings), and current API reports.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { repoRoot } from "./lib/pnpm.mjs";

const MAX = 140;
const listed = ["ls-files", "--cached", "--others", "--exclude-standard", "*.ts", "*.mjs", "*.js"];
const git = spawnSync("git", listed, { cwd: repoRoot, encoding: "utf8" });
const files = git.status === 0 ? git.stdout.split("\n").filter((f) => f && existsSync(`${repoRoot}/${f}`)) : [];
const long = [];
for (const f of files) {
  readFileSync(`${repoRoot}/${f}`, "utf8")
    .split("\n")
    .forEach((line, i) => {
      if (line.length > MAX) long.push(`${f}:${i + 1} (${line.length} characters)`);
    });
}
if (long.length) {
  console.error(`lint: ${long.length} line(s) over ${MAX} characters; wrap them:\n  ${long.join("\n  ")}`);
  process.exit(1);
}
const biome = spawnSync(`${repoRoot}/node_modules/.bin/biome`, ["check", "scripts", "vitest.shared.ts"], {
  cwd: repoRoot,
  stdio: "inherit",
});
if (biome.status !== 0) process.exit(biome.status ?? 1);
const api = spawnSync(process.execPath, [`${repoRoot}/scripts/api-report.mjs`, "--check"], { cwd: repoRoot, stdio: "inherit" });
process.exit(api.status ?? 1);
