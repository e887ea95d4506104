// Acquiring a WebGPU device (with the adapter's best limits), losing it, and mixing backends: each
// failure is one DeviceError or BackendMismatchError naming the fix. Needs WebGPU.
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { cpuOnly } from "./helpers.js";

describe.skipIf(cpuOnly)("device acquisition and loss (needs WebGPU)", () => {
  it("requests the adapter's best limits, not the defaults a browser hands out (128 MiB bindings, 256-byte offsets)", async () => {
    const b = await T.initWebGPU();
    const { create, globals } = (await import("webgpu")) as unknown as { create: (a: string[]) => GPU; globals: object };
    Object.assign(globalThis, globals);
    const adapter = (await create([]).requestAdapter())!;
    for (const k of [
      "maxStorageBufferBindingSize",
      "maxBufferSize",
      "minStorageBufferOffsetAlignment",
      "maxComputeWorkgroupStorageSize",
    ] as const)
      expect(b.device.limits[k], k).toBe(adapter.limits[k]);
    expect(b.limits.maxBufferSize).toBe(adapter.limits.maxBufferSize);
  });

  it("no adapter: one DeviceError that says what to install, without hanging", async () => {
    const fakeGpu = { requestAdapter: async () => null } as unknown as GPU;
    const err = await T.createWebGPU({ gpu: fakeGpu }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(T.DeviceError);
    expect(String((err as Error).message)).toMatch(/no WebGPU adapter found.*mesa-vulkan-drivers/);
  });

  it("a lost device turns every later call into a DeviceError naming the fix", async () => {
    const b = await T.createWebGPU();
    const x = T.tensor([1, 2, 3], undefined, { backend: b });
    expect(Array.from(await x.data())).toEqual([1, 2, 3]);
    b.device.destroy();
    await b.device.lost;
    expect(b.lost).toBe(true);
    expect(() => T.add(x, 1)).toThrow(T.DeviceError);
    expect(() => T.add(x, 1)).toThrow(/device was lost.*initWebGPU/);
    await expect(x.data()).rejects.toThrow(T.DeviceError);
  });

  it("a tensor from a different backend is refused", async () => {
    const gpu = await T.initWebGPU();
    const a = T.zeros([2], { backend: gpu });
    const b = T.zeros([2], { backend: T.cpuBackend() });
    expect(() => T.matmul(T.reshape(a, [1, 2]), T.reshape(b, [2, 1]))).toThrow(/different backends/);
  });
});
