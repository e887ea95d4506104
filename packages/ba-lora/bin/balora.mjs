#!/usr/bin/env node
// The `balora` command. It runs the compiled CLI in a child process whose stderr is filtered (Dawn's
// native driver warnings would bury balora's one-line errors) and passes Ctrl-C on as exit code 130.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { constants } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { filterDawnNoise } from "./noise.mjs";

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  console.error("balora: the CLI is not built; run `npm run build` (or `npm test`) in the balora repository first");
  process.exit(1);
}

if (process.env.BALORA_CLI_CHILD) {
  const { cli } = await import(entry.href);
  process.exitCode = await cli(process.argv.slice(2));
} else {
  const { cleanupEntry } = await import(new URL("../dist/cli/cleanup.js", import.meta.url).href);
  // fd 3: the child announces its temporary paths there (synchronously), so that if it dies without
  // cleaning up (SIGKILL, OOM, a second Ctrl-C while it is busy) this process removes them.
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: ["inherit", "inherit", "pipe", "pipe"],
    env: { ...process.env, BALORA_CLI_CHILD: "1", BALORA_TEMP_FD: "3" },
  });
  const temps = new Map();
  createInterface({ input: child.stdio[3] }).on("line", (line) => {
    try {
      const m = JSON.parse(line);
      if (m.op === "add") temps.set(m.path, m);
      else temps.delete(m.path);
    } catch {
      // not a registration
    }
  });
  const stderrDone = filterDawnNoise(child.stderr, process.stderr);
  let received = null;
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"])
    process.on(sig, () => {
      // The first signal lets the child clean up and exit 128 + N; a second one does not wait.
      child.kill(received ? "SIGKILL" : sig);
      received ??= sig;
    });
  child.on("close", async (code, signal) => {
    await stderrDone;
    for (const e of [...temps.values()].reverse()) cleanupEntry(e);
    // Exit with a code (never re-raise: our own handlers are installed, the process would exit 0).
    if (signal) process.exitCode = 128 + (constants.signals[received ?? signal] ?? 0);
    else process.exitCode = code ?? 1;
  });
}
