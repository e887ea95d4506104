// Builds the packages, then runs every package's benchmark script with the given arguments
// (`npm run bench -- --json`): results on stdout (JSON lines with --json), progress on stderr.
import { spawn } from "node:child_process";
import { filterDawnNoise } from "../packages/ba-lora/bin/noise.mjs";
import { pnpm, repoRoot } from "./lib/pnpm.mjs";

const USAGE = `usage: npm run bench -- [--json] [matmul|dispatch|all]

Runs the benchmarks of every package (tensor matmul/dispatch with jax-js and tfjs-webgpu side by side,
safetensors write/load RSS, models forward and a LoRA training step, lora PiSSA init, the regularizer
head, the BA-LoRA step vs a LoRA step and gradient checkpointing (~110M), with PyTorch CPU
when python3 + torch exist; BALORA_BENCH_PYTHON picks the interpreter, e.g. a venv with torch + peft).

  --json                 one JSON object per line on stdout; progress and notes go to stderr
  matmul|dispatch|all    which tensor benchmarks to run (default: all)
  --help                 print this help`;

const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  console.log(USAGE);
  process.exit(0);
}
const unknown = args.filter((a) => !["--json", "matmul", "dispatch", "all"].includes(a));
if (unknown.length) {
  console.error(`bench: unknown argument ${unknown.map((a) => `'${a}'`).join(", ")}\n\n${USAGE}`);
  process.exit(2);
}

const progress = (line) => process.stderr.write(`[bench] ${line}\n`);
process.env.TURBO_TELEMETRY_DISABLED = "1";
progress("building the packages");
pnpm(["exec", "turbo", "run", "build", "--output-logs=errors-only"], { stdio: ["ignore", "ignore", "inherit"] });
const benches = [
  "packages/tensor/bench/run.mjs",
  "packages/safetensors/bench/rss.mjs",
  "packages/models/bench/forward.mjs",
  "packages/models/bench/lora-step.mjs",
  "packages/lora/bench/pissa.mjs",
  "packages/regularizers/bench/head.mjs",
  "packages/ba-lora/bench/step.mjs",
];
for (const [i, b] of benches.entries()) {
  progress(`${i + 1}/${benches.length} ${b}`);
  const child = spawn(process.execPath, [b, ...args], { cwd: repoRoot, stdio: ["ignore", "inherit", "pipe"] });
  const stderr = filterDawnNoise(child.stderr, process.stderr);
  const code = await new Promise((done) => child.on("close", (c, signal) => done(signal ? 1 : (c ?? 1))));
  await stderr;
  if (code !== 0) {
    progress(`${b} failed (exit ${code})`);
    process.exit(code);
  }
}
