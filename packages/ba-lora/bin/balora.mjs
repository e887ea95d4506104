#!/usr/bin/env node
// The `balora` command. It runs the compiled CLI in a child process whose stderr is filtered: Dawn
// prints driver warnings natively (not catchable in JS) that would bury balora's one-line errors.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  console.error("balora: the CLI is not built; run `npm run build` (or `npm test`) in the balora repository first");
  process.exit(1);
}

if (process.env.BALORA_CLI_CHILD) {
  const { main } = await import(entry.href);
  process.exitCode = await main(process.argv.slice(2));
} else {
  const NOISE = /^Warning: \w+ artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.$/;
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: ["inherit", "inherit", "pipe"],
    env: { ...process.env, BALORA_CLI_CHILD: "1" },
  });
  createInterface({ input: child.stderr }).on("line", (line) => {
    if (!NOISE.test(line)) process.stderr.write(`${line}\n`);
  });
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
  child.on("close", (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exitCode = code ?? 1;
  });
}
