// Node only (the package's `#dawn` import, default condition): Dawn from the npm package `webgpu`,
// plus the XDG_RUNTIME_DIR that Mesa wants. A leaf module: browsers get dawn-browser.ts instead.
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";

let dawnGpu: GPU | undefined;

/** Dawn's GPU object, its WebGPU globals installed; throws an Error saying what to install. */
export async function dawn(): Promise<GPU | undefined> {
  if (typeof process === "undefined" || !process.versions?.node) return undefined;
  if (!process.env.XDG_RUNTIME_DIR) {
    // Mesa warns on every start without it; give it a private writable directory.
    const dir = `${tmpdir()}/balora-xdg-${process.getuid?.() ?? 0}`;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    process.env.XDG_RUNTIME_DIR = dir;
  }
  let webgpu: { create: (args: string[]) => GPU; globals: Record<string, unknown> };
  try {
    webgpu = (await import("webgpu")) as typeof webgpu;
  } catch (e) {
    throw new Error(`could not load the npm package 'webgpu' (Dawn for Node): ${(e as Error).message}; install it with 'npm i webgpu'`);
  }
  for (const [k, v] of Object.entries(webgpu.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  // Keep the Dawn instance reachable: if it is garbage-collected, its devices crash the process.
  dawnGpu ??= webgpu.create([]);
  return dawnGpu;
}
