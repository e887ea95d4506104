// Finds a pnpm that matches the root package.json's `packageManager` pin, without corepack's
// network signature check when it fails: pnpm on PATH, then corepack, then `npx -y pnpm@X`.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const pinned = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).packageManager;
export const pnpmVersion = pinned.replace(/^pnpm@/, "");

function works(cmd, args) {
  const r = spawnSync(cmd, [...args, "--version"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
    env: { ...process.env, COREPACK_ENABLE_DOWNLOAD_PROMPT: "0" },
  });
  return r.status === 0 && r.stdout.trim() === pnpmVersion;
}

let cached;
/** Returns [command, ...prefixArgs] that runs the pinned pnpm. */
export function pnpmCommand() {
  if (cached) return cached;
  const candidates = [
    ["pnpm", []],
    ["corepack", ["pnpm"]],
    ["npx", ["-y", `pnpm@${pnpmVersion}`]],
  ];
  for (const [cmd, args] of candidates) if (works(cmd, args)) return (cached = [cmd, ...args]);
  throw new Error(
    `balora setup: could not run pnpm ${pnpmVersion} (tried pnpm, corepack, npx). Install it with: npm i -g pnpm@${pnpmVersion}`,
  );
}

/**
 * Runs the pinned pnpm with inherited stdio; exits the process on failure. Its errors always show:
 * pnpm would otherwise inherit npm's `loglevel=silent` (.npmrc) and drop them.
 */
export function pnpm(args, opts = {}) {
  const [cmd, ...pre] = pnpmCommand();
  const level = args.some((a) => a.startsWith("--loglevel")) ? [] : ["--loglevel=error"];
  const r = spawnSync(cmd, [...pre, ...level, ...args], { stdio: "inherit", cwd: repoRoot, ...opts });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
