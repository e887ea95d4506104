// Runs the workspace's turbo through the pinned pnpm with telemetry off, forwarding arguments, and
// drops Dawn's native driver warnings from its output; colour codes only when stdout is a terminal.
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { filterDawnNoise } from "../packages/ba-lora/bin/noise.mjs";
import { pnpmCommand, repoRoot } from "./lib/pnpm.mjs";

const args = process.argv.slice(2);
const env = { ...process.env, TURBO_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" };
// turbo sees a pipe (this filter) either way, so say explicitly whether there should be colour.
const colour = Boolean(process.stdout.isTTY) && !("NO_COLOR" in process.env);
if (colour) env.FORCE_COLOR ??= "1";
else {
  env.NO_COLOR = "1";
  delete env.FORCE_COLOR;
}
const colourFlag = args.includes("--color") || args.includes("--no-color") ? [] : [colour ? "--color" : "--no-color"];

const [cmd, ...pre] = pnpmCommand();
const child = spawn(cmd, [...pre, "exec", "turbo", ...args, ...colourFlag], { cwd: repoRoot, env, stdio: ["inherit", "pipe", "pipe"] });
const done = Promise.all([filterDawnNoise(child.stdout, process.stdout), filterDawnNoise(child.stderr, process.stderr)]);
// Ctrl-C reaches turbo too (same process group); wait for it to stop its tasks and report.
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("close", async (code, signal) => {
  await done;
  process.exitCode = signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? 1);
});
