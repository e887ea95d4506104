#!/usr/bin/env node
// The `balora` command: runs the compiled CLI (build with `npm run build` or any `npm test`/`npm run demo`).
import { existsSync } from "node:fs";

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  console.error("balora: the CLI is not built; run `npm run build` (or `npm test`) in the balora repository first");
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
