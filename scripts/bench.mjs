// Builds the packages, then runs every package's benchmark script with the given arguments
// (`npm run bench -- --json`), printing their JSON lines on stdout.
import { spawnSync } from "node:child_process";
import { pnpm, repoRoot } from "./lib/pnpm.mjs";

process.env.TURBO_TELEMETRY_DISABLED = "1";
pnpm(["exec", "turbo", "run", "build", "--output-logs=errors-only"], { stdio: ["ignore", "ignore", "inherit"] });
const args = process.argv.slice(2);
const benches = [
  "packages/tensor/bench/run.mjs",
  "packages/safetensors/bench/rss.mjs",
  "packages/models/bench/forward.mjs",
  "packages/lora/bench/pissa.mjs",
  "packages/regularizers/bench/head.mjs",
];
for (const b of benches) {
  const r = spawnSync(process.execPath, [b, ...args], { cwd: repoRoot, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
