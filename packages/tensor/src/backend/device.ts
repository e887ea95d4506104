// Finds a WebGPU adapter on one code path for browsers (navigator.gpu) and Node (Dawn, npm
// `webgpu`), requests the adapter's full limits, and explains what to install when none exists.
import { DeviceError } from "../errors.js";
import { WebGPUBackend } from "./webgpu.js";

export interface WebGPUOptions {
  powerPreference?: GPUPowerPreference;
  /** Use this GPU object instead of navigator.gpu / Dawn. */
  gpu?: GPU;
}

const NO_ADAPTER_HELP =
  "no WebGPU adapter found. In Node, install a Vulkan driver: on Debian 12 as root add bookworm-backports and run " +
  "'apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1' (or run 'npm test' in the balora repo, which does it); " +
  "elsewhere install your GPU's Vulkan driver or Mesa >= 24 lavapipe. In a browser, use one with WebGPU enabled.";

const isNode = typeof process !== "undefined" && !!process.versions?.node;

async function findGpu(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (!isNode) throw new DeviceError(NO_ADAPTER_HELP);
  if (!process.env.XDG_RUNTIME_DIR) {
    // Mesa warns on every start without it; give it a private writable directory.
    const { mkdirSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = `${tmpdir()}/balora-xdg-${process.getuid?.() ?? 0}`;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    process.env.XDG_RUNTIME_DIR = dir;
  }
  let webgpu: { create: (args: string[]) => GPU; globals: Record<string, unknown> };
  try {
    webgpu = (await import(/* @vite-ignore */ "webgpu")) as typeof webgpu;
  } catch (e) {
    throw new DeviceError(
      `could not load the npm package 'webgpu' (Dawn for Node): ${(e as Error).message}; install it with 'npm i webgpu'`,
    );
  }
  for (const [k, v] of Object.entries(webgpu.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  // Keep the Dawn instance reachable: if it is garbage-collected, its devices crash the process.
  dawnGpu ??= webgpu.create([]);
  return dawnGpu;
}

let dawnGpu: GPU | undefined;

const WANTED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupsPerDimension",
] as const;

/** Creates a WebGPU backend with the adapter's maximum limits. Throws DeviceError when there is none. */
export async function createWebGPU(opts: WebGPUOptions = {}): Promise<WebGPUBackend> {
  const gpu = opts.gpu ?? (await findGpu());
  const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? "high-performance" });
  if (!adapter) throw new DeviceError(NO_ADAPTER_HELP);
  const requiredLimits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) requiredLimits[k] = adapter.limits[k];
  const requiredFeatures = (["timestamp-query", "subgroups"] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = adapter.info;
  const description =
    [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ").trim() || "unknown WebGPU adapter";
  const sgMin = (info as { subgroupMinSize?: number }).subgroupMinSize;
  const sgMax = (info as { subgroupMaxSize?: number }).subgroupMaxSize;
  return new WebGPUBackend(device, description, {
    software: info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|warp/i.test(description),
    // Kernels built around one subgroup per workgroup need a fixed, known subgroup size.
    subgroupSize: device.features.has("subgroups") && sgMin !== undefined && sgMin === sgMax ? sgMin : null,
  });
}
