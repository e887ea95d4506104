// Tensors larger than one storage binding: a backend on the same device with a 4 KiB binding limit
// (and GPU-like 256-byte offset alignment) runs the LM-head path in windows; results match the oracle.
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { mapElementwise } from "../src/kernel.js";
import { cpu, cpuOnly, expectClose, getGpu } from "./helpers.js";

const LIMIT = 4096;

let small: T.WebGPUBackend | undefined;
async function smallBindings(): Promise<T.WebGPUBackend> {
  const gpu = await getGpu();
  return (small ??= new T.WebGPUBackend(gpu.device, "4 KiB bindings", gpu.traits, {
    maxStorageBufferBindingSize: LIMIT,
    minStorageBufferOffsetAlignment: 256,
  }));
}

/** Runs `fn` on the small-binding backend and on the oracle from the same inputs; compares outputs and input gradients. */
async function same(
  name: string,
  inputs: { shape: number[]; dtype?: T.DType; grad?: boolean; ints?: [number, number]; ignoreEvery?: number }[],
  fn: (...xs: T.Tensor[]) => T.Tensor,
  tol = 2e-5,
): Promise<void> {
  const g = await smallBindings();
  const rng = new T.Rng(3);
  const values = inputs.map((s) =>
    Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, (_, i) => {
      if (!s.ints) return 2 * rng.next() - 1;
      if (s.ignoreEvery && i % s.ignoreEvery === 0) return -100;
      return s.ints[0] + Math.floor(rng.next() * (s.ints[1] - s.ints[0]));
    }),
  );
  const run = async (b: T.Backend) => {
    const xs = inputs.map((s, i) => {
      const t = T.tensor(values[i], s.shape, { backend: b, dtype: s.ints ? "i32" : (s.dtype ?? "f32") });
      t.requiresGrad = !!s.grad;
      return t;
    });
    const y = fn(...xs);
    const out = Array.from(await y.data());
    const grads: number[][] = [];
    if (y.requiresGrad) {
      const w = T.tensor(
        Array.from({ length: y.size }, (_, i) => Math.sin(i)),
        y.shape,
        { backend: b },
      );
      const l = T.sum(T.mul(y, w));
      T.backward(l);
      for (const x of xs) if (x.requiresGrad) grads.push(Array.from(await x.grad!.data()));
    }
    return { out, grads, big: xs.some((x) => x.size * 4 > LIMIT) || y.size * 4 > LIMIT };
  };
  const [a, e] = [await run(g), await run(cpu)];
  expect(a.big, `${name}: the case must exceed the binding limit`).toBe(true);
  expectClose(a.out, e.out, tol, tol, `${name} forward`);
  a.grads.forEach((gr, i) => expectClose(gr, e.grads[i], tol, tol, `${name} grad ${i}`));
}

describe.skipIf(cpuOnly)("binding windows (needs WebGPU; BALORA_BACKEND=cpu has no bindings)", () => {
  it("matmul in every layout, f32 and bf16, with gradients", async () => {
    await same(
      "x·Wᵀ (LM head)",
      [
        { shape: [37, 45], grad: true },
        { shape: [70, 45], grad: true },
      ],
      (x, w) => T.matmul(x, w, { transB: true }),
    );
    await same(
      "x·W",
      [
        { shape: [37, 45], grad: true },
        { shape: [45, 70], grad: true },
      ],
      (x, w) => T.matmul(x, w),
    );
    await same(
      "xᵀ·W",
      [
        { shape: [45, 37], grad: true },
        { shape: [45, 70], grad: true },
      ],
      (x, w) => T.matmul(x, w, { transA: true }),
    );
    await same(
      "x·Wᵀ, bf16 W",
      [
        { shape: [9, 40], grad: true },
        { shape: [300, 40], dtype: "bf16" },
      ],
      (x, w) => T.matmul(x, w, { transB: true }),
      1e-4,
    );
  });

  it("cross-entropy, softmax and log-softmax over rows larger than a binding", async () => {
    await same(
      "crossEntropy",
      [
        { shape: [13, 150], grad: true },
        { shape: [13], ints: [0, 150], ignoreEvery: 4 },
      ],
      (x, l) => T.crossEntropy(x, l),
    );
    await same("softmax", [{ shape: [11, 200], grad: true }], (x) => T.softmax(x));
    await same("logSoftmax", [{ shape: [11, 200], grad: true }], (x) => T.logSoftmax(x));
  });

  it("embedding gather from a table larger than a binding (f32 and bf16), and its scatter-add gradient", async () => {
    await same(
      "embedding",
      [
        { shape: [500, 12], grad: true },
        { shape: [3, 7], ints: [0, 500] },
      ],
      (t, ids) => T.embedding(t, ids),
    );
    await same(
      "embedding bf16",
      [
        { shape: [900, 12], dtype: "bf16" },
        { shape: [2, 5], ints: [0, 900] },
      ],
      (t, ids) => T.embedding(t, ids),
      1e-2,
    );
  });

  it("elementwise ops over big flat tensors and broadcast biases", async () => {
    await same("tanh softcap", [{ shape: [30, 100], grad: true }], (x) => T.mul(T.tanh(T.mul(x, 1 / 30)), 30));
    await same(
      "bias add",
      [
        { shape: [30, 100], grad: true },
        { shape: [100], grad: true },
      ],
      (x, bias) => T.add(x, bias),
    );
  });

  it("an op that does not split its operands refuses a too-large one by name", async () => {
    const g = await smallBindings();
    const x = T.randn([40, 40], { backend: g, seed: 1 });
    const w = T.ones([40], { backend: g });
    expect(() => T.rmsNorm(x, w)).toThrow(
      /^rmsnorm: a f32 tensor of 1600 elements \(6400 bytes\) is above this adapter's maxStorageBufferBindingSize \(4096 bytes\)/,
    );
    w.dispose();
    x.dispose();
  });
});

describe("elementwise pipelines", () => {
  it("are keyed on the generated expression: the same op name with two scalars inlined gives two kernels", async () => {
    const b = cpuOnly ? cpu : await getGpu();
    const x = T.tensor([1, 2, 3], [3], { backend: b });
    const twice = mapElementwise(
      "scale",
      [x],
      ([v]) => `${v} * 2.0`,
      (v) => v * 2,
    );
    const tenfold = mapElementwise(
      "scale",
      [x],
      ([v]) => `${v} * 10.0`,
      (v) => v * 10,
    );
    expect(Array.from(await twice.data())).toEqual([2, 4, 6]);
    expect(Array.from(await tenfold.data())).toEqual([10, 20, 30]);
    for (const t of [x, twice, tenfold]) t.dispose();
  });
});
