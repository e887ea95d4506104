// Finds a WebGPU adapter on one code path for browsers (navigator.gpu) and Node (Dawn, npm `webgpu`,
// loaded by `#dawn`: dawn.ts, or dawn-browser.ts under the browser condition), requests full limits.
import { dawn } from "#dawn";
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

async function findGpu(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  let gpu: GPU | undefined;
  try {
    gpu = await dawn();
  } catch (e) {
    throw new DeviceError((e as Error).message);
  }
  if (!gpu) throw new DeviceError(NO_ADAPTER_HELP);
  return gpu;
}

/** Every limit the adapter reports, at the adapter's best value (browsers hand out defaults unless asked). */
function bestLimits(adapter: GPUAdapter): Record<string, number> {
  const limits: Record<string, number> = {};
  for (const k in adapter.limits) {
    const v = (adapter.limits as unknown as Record<string, unknown>)[k];
    if (typeof v === "number" && /^(max|min)[A-Z]/.test(k)) limits[k] = v;
  }
  return limits;
}

/** Creates a WebGPU backend with the adapter's maximum limits. Throws DeviceError when there is none. */
export async function createWebGPU(opts: WebGPUOptions = {}): Promise<WebGPUBackend> {
  const gpu = opts.gpu ?? (await findGpu());
  const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? "high-performance" });
  if (!adapter) throw new DeviceError(NO_ADAPTER_HELP);
  const requiredLimits = bestLimits(adapter);
  const requiredFeatures = (["timestamp-query", "subgroups"] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = adapter.info;
  const description =
    [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ").trim() || "unknown WebGPU adapter";
  const sgMin = (info as { subgroupMinSize?: number }).subgroupMinSize;
  const sgMax = (info as { subgroupMaxSize?: number }).subgroupMaxSize;
  return new WebGPUBackend(device, description, {
    software: info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|warp/i.test(description),
    // A fallback adapter (Chromium's SwiftShader) compiles some register-heavy kernels badly: kernels may pick other forms.
    fallback: !!info.isFallbackAdapter,
    // Kernels built around one subgroup per workgroup need a fixed, known subgroup size.
    subgroupSize: device.features.has("subgroups") && sgMin !== undefined && sgMin === sgMax ? sgMin : null,
  });
}
