import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { checkOp, cpu, cpuOnly, expectClose, getGpu, testBackend } from "./helpers.js";

describe("matmul", () => {
  const cases: [string, number[], number[], T.MatmulOptions][] = [
    ["square", [16, 16], [16, 16], {}],
    ["odd sizes", [17, 33], [33, 5], {}],
    ["tall-skinny", [1, 7], [7, 65], {}],
    ["transB (x·Wᵀ)", [6, 13], [11, 13], { transB: true }],
    ["transA", [13, 6], [13, 9], { transA: true }],
    ["both transposed", [13, 6], [9, 13], { transA: true, transB: true }],
    ["batched", [3, 5, 7], [3, 7, 4], {}],
    ["broadcast batch", [2, 3, 5, 7], [1, 7, 6], {}],
    ["broadcast matrix", [4, 5, 7], [7, 3], {}],
  ];
  for (const [name, sa, sb, o] of cases) {
    it(name, async () => {
      await checkOp(`matmul ${name}`, (a, b) => T.matmul(a, b, o), [{ shape: sa }, { shape: sb }], { atol: 1e-5, rtol: 1e-5 });
    });
  }
  // WebGPU semantics (f32 overflow, deferred device validation, kernel selection): skipped with BALORA_BACKEND=cpu.
  it.skipIf(cpuOnly)("reads transposed views without copying and 16-bit weights in-shader", async () => {
    await checkOp("a·transpose(b)", (a, b) => T.matmul(a, T.transpose(b)), [{ shape: [5, 7] }, { shape: [9, 7] }]);
    const gpu = await getGpu();
    for (const dtype of ["bf16", "f16"] as const) {
      const x = T.randn([5, 19], { seed: 1 });
      const xs = await x.data();
      const w = T.randn([7, 19], { seed: 2 });
      const ws = await w.data();
      const g = await T.matmul(T.tensor(xs, [5, 19], { backend: gpu }), T.tensor(ws, [7, 19], { backend: gpu, dtype }), {
        transB: true,
      }).data();
      const c = await T.matmul(T.tensor(xs, [5, 19], { backend: cpu }), T.tensor(ws, [7, 19], { backend: cpu, dtype }), {
        transB: true,
      }).data();
      expectClose(g, c, 1e-5, 1e-5, `matmul ${dtype}`);
    }
  });
  // WebGPU semantics (f32 overflow, deferred device validation, kernel selection): skipped with BALORA_BACKEND=cpu.
  it.skipIf(cpuOnly)(
    "every kernel family (subgroup, register, GPU tiles) is exact on odd, vec4, transposed and batched shapes",
    async () => {
      const gpu = await getGpu();
      const saved = { ...gpu.traits };
      const traits = gpu.traits as { software: boolean; subgroupSize: number | null };
      const families = [
        { software: true, subgroupSize: saved.subgroupSize },
        { software: true, subgroupSize: null },
        { software: false, subgroupSize: null },
      ];
      try {
        for (const f of families) {
          Object.assign(traits, f);
          for (const [sa, sb, o] of [
            [[64, 36], [36, 20], {}],
            [[17, 33], [33, 5], {}],
            [[3, 8, 12], [3, 12, 16], {}],
            [[40, 24], [28, 24], { transB: true }],
            [[24, 40], [24, 28], { transA: true }],
            [[9, 130], [70, 9], { transA: true, transB: true }],
            [[2, 1, 4, 8], [3, 8, 4], {}],
          ] as [number[], number[], T.MatmulOptions][]) {
            const specs = [
              { shape: sa, grad: false },
              { shape: sb, grad: false },
            ];
            await checkOp(`matmul ${JSON.stringify(f)} ${sa}·${sb}`, (a, b) => T.matmul(a, b, o), specs, { atol: 1e-5, rtol: 1e-5 });
          }
        }
      } finally {
        Object.assign(traits, saved);
      }
    },
  );
  it("rejects mismatched inner dimensions", async () => {
    const gpu = await getGpu();
    expect(() => T.matmul(T.zeros([2, 3], { backend: gpu }), T.zeros([4, 5], { backend: gpu }))).toThrow(
      /matmul: inner dimensions differ: \[2,3\] · \[4,5\]/,
    );
  });
});

describe("softmax and log-softmax", () => {
  it("matches the oracle on odd sizes and other axes", async () => {
    await checkOp("softmax", (x) => T.softmax(x), [{ shape: [7, 37], low: -5, high: 5 }]);
    await checkOp("logSoftmax", (x) => T.logSoftmax(x), [{ shape: [3, 1100], low: -5, high: 5 }], { atol: 1e-5 });
    await checkOp("softmax axis 0", (x) => T.softmax(x, 0), [{ shape: [9, 4] }]);
  });
  it("is stable at logits of ±1e4", async () => {
    const vals = [1e4, -1e4, 0, 9999, -3, 1e4];
    await checkOp("softmax extreme", (x) => T.softmax(x), [{ shape: [1, 6], values: vals }], { fd: false });
    await checkOp("logSoftmax extreme", (x) => T.logSoftmax(x), [{ shape: [1, 6], values: vals }], { fd: false, atol: 1e-3, rtol: 1e-6 });
  });
});

describe("rmsNorm", () => {
  it("LLaMA form (x·r·w) and Gemma form (x·r·(1+w)), with gradients for x and w", async () => {
    await checkOp("rmsNorm", (x, w) => T.rmsNorm(x, w, { eps: 1e-5 }), [{ shape: [3, 5, 67] }, { shape: [67] }], {
      atol: 1e-5,
      rtol: 1e-5,
    });
    await checkOp("rmsNorm gemma", (x, w) => T.rmsNorm(x, w, { eps: 1e-6, offset: 1 }), [{ shape: [4, 300] }, { shape: [300] }], {
      atol: 1e-5,
      rtol: 1e-5,
    });
  });
  it("takes a frozen bf16 weight", async () => {
    await checkOp("rmsNorm bf16 w", (x, w) => T.rmsNorm(x, w), [{ shape: [4, 33] }, { shape: [33], dtype: "bf16" }]);
  });
});

describe("rope", () => {
  const invFreq = (D: number, base = 10000) => Array.from({ length: D / 2 }, (_, j) => 1 / base ** ((2 * j) / D));
  it("rotates pairs (i, i + D/2) for both layouts, with offsets and explicit positions", async () => {
    const D = 10;
    await checkOp("rope bthd", (x, f) => T.rope(x, f), [{ shape: [2, 5, 3, D] }, { shape: [D / 2], values: invFreq(D), grad: false }]);
    await checkOp("rope bhtd offset", (x, f) => T.rope(x, f, { layout: "bhtd", offset: 7 }), [
      { shape: [2, 3, 5, D] },
      { shape: [D / 2], values: invFreq(D), grad: false },
    ]);
    await checkOp("rope positions", (x, f, p) => T.rope(x, f, { positions: p }), [
      { shape: [2, 4, 1, D] },
      { shape: [D / 2], values: invFreq(D), grad: false },
      { shape: [2, 4], dtype: "i32", values: [0, 0, 1, 2, 5, 6, 7, 8] },
    ]);
  });
  it("writes the other layout directly (outLayout), equal to rope then transpose, with the gradient coming back", async () => {
    const D = 6;
    await checkOp("rope bthd→bhtd", (x, f) => T.rope(x, f, { outLayout: "bhtd", offset: 3 }), [
      { shape: [2, 5, 3, D] },
      { shape: [D / 2], values: invFreq(D), grad: false },
    ]);
    await checkOp("rope then transpose", (x, f) => T.contiguous(T.transpose(T.rope(x, f, { offset: 3 }), 1, 2)), [
      { shape: [2, 5, 3, D] },
      { shape: [D / 2], values: invFreq(D), grad: false },
    ]);
    const b = await testBackend();
    const x = T.randn([2, 5, 3, D], { backend: b, seed: 4 });
    const f = T.tensor(invFreq(D), [D / 2], { backend: b });
    const direct = T.rope(x, f, { outLayout: "bhtd" });
    const viaCopy = T.contiguous(T.transpose(T.rope(x, f), 1, 2));
    expect(direct.shape).toEqual([2, 3, 5, D]);
    expect(Array.from(await direct.data())).toEqual(Array.from(await viaCopy.data()));
  });
  it("is accurate at large positions (angle range reduction)", async () => {
    const D = 8;
    await checkOp(
      "rope far",
      (x, f) => T.rope(x, f, { offset: 100000 }),
      [{ shape: [1, 3, 1, D] }, { shape: [D / 2], values: invFreq(D), grad: false }],
      { atol: 2e-5, fd: false },
    );
  });
});

describe("attention", () => {
  const shapes = (B: number, Hq: number, Hkv: number, T_: number, S: number, D: number) => [
    { shape: [B, Hq, T_, D] },
    { shape: [B, Hkv, S, D] },
    { shape: [B, Hkv, S, D] },
  ];
  it("causal, multi-head", async () => {
    await checkOp("attn causal", (q, k, v) => T.attention(q, k, v), shapes(2, 2, 2, 5, 5, 6), { atol: 1e-5 });
  });
  it("grouped-query heads (Hq = 3·Hkv) and a KV-cache offset (T < S)", async () => {
    await checkOp("attn gqa", (q, k, v) => T.attention(q, k, v), shapes(1, 6, 2, 3, 7, 4), { atol: 1e-5 });
  });
  it("sliding window, padding mask and soft-capping", async () => {
    await checkOp("attn window", (q, k, v) => T.attention(q, k, v, { window: 3 }), shapes(1, 2, 1, 9, 9, 4), { atol: 1e-5 });
    await checkOp(
      "attn padding",
      (q, k, v, m) => T.attention(q, k, v, { keyMask: m }),
      [...shapes(2, 2, 1, 4, 4, 4), { shape: [2, 4], values: [0, 1, 1, 1, 1, 1, 1, 0], grad: false }],
      { atol: 1e-5 },
    );
    await checkOp("attn softcap", (q, k, v) => T.attention(q, k, v, { softcap: 0.5, scale: 2 }), shapes(1, 2, 2, 4, 4, 4), { atol: 1e-5 });
  });
});

describe("embedding", () => {
  it("gathers rows (f32 and bf16 tables) and scatter-adds gradients for repeated ids", async () => {
    await checkOp("embedding", (t, ids) => T.embedding(t, ids), [
      { shape: [11, 6] },
      { shape: [2, 5], dtype: "i32", values: [0, 3, 3, 10, 2, 3, 0, 9, 9, 9] },
    ]);
    await checkOp("embedding bf16", (t, ids) => T.embedding(t, ids), [
      { shape: [11, 6], dtype: "bf16" },
      { shape: [3], dtype: "i32", values: [1, 2, 10] },
    ]);
  });
  // WebGPU semantics (f32 overflow, deferred device validation, kernel selection): skipped with BALORA_BACKEND=cpu.
  it.skipIf(cpuOnly)("rejects out-of-range ids with an IndexError naming the op and shapes", async () => {
    const gpu = await getGpu();
    const table = T.zeros([10, 4], { backend: gpu });
    const ids = T.tensor(new Int32Array([1, 10]), [1, 2], { backend: gpu });
    const out = T.embedding(table, ids);
    await expect(out.data()).rejects.toThrow(/embedding: an id is out of range \[0, 10\) for table \[10,4\] \(ids \[1,2\]\): got 10/);
    // the error is reported once; the backend stays usable
    expect((await T.embedding(table, T.tensor(new Int32Array([9]), [1], { backend: gpu })).data()).length).toBe(4);
    expect(() => T.embedding(T.zeros([10, 4], { backend: cpu }), T.tensor(new Int32Array([-1]), [1], { backend: cpu }))).toThrow(
      T.IndexError,
    );
  });
});

describe("cross-entropy", () => {
  it("mean over counted labels with ignore_index -100", async () => {
    await checkOp(
      "xent",
      (x, y) => T.crossEntropy(x, y),
      [
        { shape: [2, 3, 37], low: -4, high: 4 },
        { shape: [2, 3], dtype: "i32", values: [5, -100, 36, 0, -100, 7] },
      ],
      { atol: 1e-5 },
    );
    await checkOp(
      "xent sum",
      (x, y) => T.crossEntropy(x, y, { reduction: "sum" }),
      [
        { shape: [4, 1200], low: -4, high: 4 },
        { shape: [4], dtype: "i32", values: [1, 2, 1199, 0] },
      ],
      { atol: 1e-4 },
    );
    await checkOp("xent none", (x, y) => T.crossEntropy(x, y, { reduction: "none" }), [
      { shape: [3, 9] },
      { shape: [3], dtype: "i32", values: [1, -100, 8] },
    ]);
  });
  it("matches a hand-computed value and is stable for logits of 1e4", async () => {
    const gpu = await getGpu();
    const x = T.tensor([[1e4, 0, -1e4]], undefined, { backend: gpu });
    const y = T.tensor(new Int32Array([1]), [1], { backend: gpu });
    expect(await T.crossEntropy(x, y).item()).toBeCloseTo(1e4, 1);
    const x2 = T.tensor([[0, Math.log(3)]], undefined, { backend: gpu });
    expect(await T.crossEntropy(x2, T.tensor(new Int32Array([1]), [1], { backend: gpu })).item()).toBeCloseTo(-Math.log(0.75), 6);
  });
  // WebGPU semantics (f32 overflow, deferred device validation, kernel selection): skipped with BALORA_BACKEND=cpu.
  it.skipIf(cpuOnly)("rejects labels out of range", async () => {
    const gpu = await getGpu();
    const l = T.crossEntropy(T.zeros([2, 5], { backend: gpu }), T.tensor(new Int32Array([1, 5]), [2], { backend: gpu }));
    await expect(l.data()).rejects.toThrow(/crossEntropy: a label is out of range \[0, 5\)/);
    expect(() => T.crossEntropy(T.zeros([2, 5], { backend: gpu }), T.zeros([3], { backend: gpu, dtype: "i32" }))).toThrow(T.ShapeError);
  });
});

describe("dropout and topk", () => {
  it("dropout: same seeded mask on both backends, scaled by 1/(1-p)", async () => {
    await checkOp("dropout", (x) => T.dropout(x, 0.3, 42), [{ shape: [7, 31] }]);
    const gpu = await getGpu();
    const y = await T.dropout(T.ones([10000], { backend: gpu }), 0.25, 7).data();
    const kept = y.filter((v) => v !== 0);
    expect(kept.length / y.length).toBeGreaterThan(0.73);
    expect(kept.length / y.length).toBeLessThan(0.77);
    expect(kept[0]).toBeCloseTo(1 / 0.75, 6);
  });
  it("topk values, indices and gradient", async () => {
    await checkOp("topk", (x) => T.topk(x, 5).values, [{ shape: [3, 41] }]);
    const gpu = await getGpu();
    const { values, indices } = T.topk(T.tensor([[1, 5, 5, -1e30, 2]], undefined, { backend: gpu }), 4);
    expect(Array.from(await values.data())).toEqual([5, 5, 2, 1]);
    expect(Array.from(await indices.data())).toEqual([1, 2, 4, 0]);
    expect(
      Array.from(
        await T.argmax(
          T.tensor(
            [
              [0, 3, 1],
              [7, 7, 0],
            ],
            undefined,
            { backend: gpu },
          ),
        ).data(),
      ),
    ).toEqual([1, 0]);
  });
});
