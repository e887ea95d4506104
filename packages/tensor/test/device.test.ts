import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";

describe("device acquisition and loss", () => {
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
