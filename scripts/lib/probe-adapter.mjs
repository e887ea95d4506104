// Prints one JSON line describing the WebGPU adapter Dawn finds ({"adapter":null} when none).
// Run as a child process by setup so a broken driver can never hang or crash the caller.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

if (!process.env.XDG_RUNTIME_DIR) {
  process.env.XDG_RUNTIME_DIR = join(tmpdir(), `balora-xdg-${process.getuid?.() ?? 0}`);
  mkdirSync(process.env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
}
const require = createRequire(new URL("../../packages/tensor/package.json", import.meta.url));
const { create } = require("webgpu");
const gpu = create([]);
const adapter = await gpu.requestAdapter();
const info = adapter?.info;
console.log(JSON.stringify({ adapter: adapter ? `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.trim() : null }));
process.exit(0);
