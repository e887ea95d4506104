// The process-wide WebGPU backend most programs want: created once on first use, made the default
// backend, and destroyed on request so a Node process can exit (Dawn keeps it alive otherwise).
import { peekDefaultBackend, setDefaultBackend } from "../tensor.js";
import { createWebGPU, type WebGPUOptions } from "./device.js";
import type { WebGPUBackend } from "./webgpu.js";

let shared: Promise<WebGPUBackend> | null = null;

/** Creates (once) the WebGPU backend and makes it the default. */
export function initWebGPU(opts?: WebGPUOptions): Promise<WebGPUBackend> {
  shared ??= createWebGPU(opts).then((b) => {
    setDefaultBackend(b);
    return b;
  });
  shared.catch(() => (shared = null));
  return shared;
}

/** Destroys the backend `initWebGPU()` created (so the process can exit); a later call creates a new one. */
export async function releaseWebGPU(): Promise<void> {
  if (!shared) return;
  const b = await shared.catch(() => null);
  shared = null;
  if (!b) return;
  if (peekDefaultBackend() === b) setDefaultBackend(null);
  b.destroy();
}
