// State that can be saved and restored exactly: optimizer state dicts through a safetensors file,
// explicit generator state, dropout masks keyed by (seed, step, stream), bit-identical reruns.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSafetensors, writeSafetensors } from "@balora/safetensors";
import { afterAll, describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { cpuOnly, expectClose, testBackend } from "./helpers.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tempFile(name: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "balora-state-"));
  dirs.push(d);
  return join(d, name);
}

/** Writes f32 tensors and string metadata to a safetensors file. */
async function save(path: string, tensors: Record<string, T.Tensor>, metadata: Record<string, string> = {}): Promise<void> {
  const out: Record<string, { dtype: "F32"; shape: readonly number[]; data: Float32Array }> = {};
  for (const [k, t] of Object.entries(tensors)) out[k] = { dtype: "F32", shape: t.shape, data: Float32Array.from(await t.data()) };
  await writeSafetensors(path, out, { metadata });
}

/** Reads a safetensors file back as tensors on `b` plus its metadata. */
async function load(path: string, b: T.Backend): Promise<{ tensors: Record<string, T.Tensor>; metadata: Record<string, string> }> {
  const f = await openSafetensors(path);
  const tensors: Record<string, T.Tensor> = {};
  for await (const t of f) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    tensors[t.name] = T.tensorFromBytes(bytes, "f32", t.shape, { backend: b });
  }
  await f.close();
  return { tensors, metadata: { ...(f.metadata ?? {}) } };
}

class Mlp extends T.Module {
  up: T.Linear;
  norm: T.RMSNorm;
  down: T.Linear;
  constructor(b: T.Backend, seed: number) {
    super();
    this.up = new T.Linear(6, 12, { backend: b, seed, bias: true });
    this.norm = new T.RMSNorm(12, 1e-6, 0, { backend: b });
    this.down = new T.Linear(12, 5, { backend: b, seed: seed + 7 });
  }
  /** One loss with a dropout mask that depends only on (seed, step, stream). */
  loss(x: T.Tensor, labels: T.Tensor, step: number): T.Tensor {
    return T.tidy(() => {
      const h = T.dropout(T.silu(this.up.forward(x)), 0.25, { seed: 42, step, stream: "up" });
      return T.crossEntropy(this.down.forward(this.norm.forward(h)), labels);
    });
  }
}

async function snapshot(m: T.Module): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [n, t] of m.namedParameters()) out[n] = Array.from(await t.data());
  return out;
}

describe("optimizer state dicts", () => {
  const kinds: [string, (m: T.Module) => T.Optimizer][] = [
    ["AdamW", (m) => new T.AdamW(m.namedTrainableParameters(), { lr: 3e-2, weightDecay: 0.1 })],
    ["SGD with momentum", (m) => new T.SGD(m.namedTrainableParameters(), { lr: 5e-2, momentum: 0.9, weightDecay: 1e-2 })],
  ];
  for (const [kind, make] of kinds) {
    const title = `${kind}: 10 steps == 5 steps, save to safetensors, load into a fresh optimizer over a fresh model, 5 steps`;
    it(`${title} (bit-identical)`, async () => {
      const b = await testBackend();
      const x = T.randn([7, 6], { backend: b, seed: 11 });
      const labels = T.tensor(Int32Array.from([0, 4, -100, 2, 1, 3, 0]), [7], { backend: b });
      const train = (m: Mlp, opt: T.Optimizer, from: number, to: number) => {
        for (let step = from; step < to; step++) {
          const loss = m.loss(x, labels, step);
          T.backward(loss);
          loss.dispose();
          opt.step();
          opt.zeroGrad();
          opt.lr *= 0.9; // a schedule: the saved lr must come back
        }
      };
      const straight = new Mlp(b, 1);
      const optA = make(straight);
      train(straight, optA, 0, 10);

      const first = new Mlp(b, 1);
      const optB = make(first);
      train(first, optB, 0, 5);
      const weights = await tempFile("model.safetensors");
      const state = await tempFile("optimizer.safetensors");
      await save(weights, Object.fromEntries(first.namedParameters()));
      const sd = optB.stateDict();
      await save(state, sd.tensors, sd.metadata);
      for (const t of Object.values(sd.tensors)) t.dispose();
      optB.dispose();
      first.dispose();

      const resumed = new Mlp(b, 99); // different init: everything must come from the files
      const loaded = await load(weights, b);
      for (const [n, p] of resumed.namedParameters()) T.copyInto(p, loaded.tensors[n]);
      const optC = make(resumed);
      const opt = await load(state, b);
      optC.loadStateDict(opt);
      for (const t of [...Object.values(loaded.tensors), ...Object.values(opt.tensors)]) t.dispose();
      expect(optC.stepCount).toBe(5);
      train(resumed, optC, 5, 10);

      // Bit-identical on WebGPU; the float64 oracle keeps more digits than the F32 files it went through.
      const [got, want] = [await snapshot(resumed), await snapshot(straight)];
      if (cpuOnly) for (const k of Object.keys(want)) expectClose(got[k], want[k], 1e-6, 1e-5, k);
      else expect(got).toEqual(want);
      const [sa, sc] = [optA.stateDict(), optC.stateDict()];
      expect(Object.keys(sc.tensors).sort()).toEqual(Object.keys(sa.tensors).sort());
      for (const k of Object.keys(sa.tensors)) {
        const [c, a] = [Array.from(await sc.tensors[k].data()), Array.from(await sa.tensors[k].data())];
        if (cpuOnly) expectClose(c, a, 1e-6, 1e-5, k);
        else expect(c, k).toEqual(a);
      }
      expect(sc.metadata).toEqual(sa.metadata);
      for (const t of [...Object.values(sa.tensors), ...Object.values(sc.tensors), x, labels]) t.dispose();
      for (const d of [optA, optC, straight, resumed]) d.dispose();
    });
  }

  it("refuses a state from another optimizer kind or other parameters, naming them", async () => {
    const b = await testBackend();
    const m = new Mlp(b, 1);
    const adam = new T.AdamW(m.namedTrainableParameters());
    const sgd = new T.SGD(m.namedTrainableParameters());
    expect(() => sgd.loadStateDict(adam.stateDict())).toThrow(/state is from AdamW, this optimizer is SGD/);
    const other = new T.AdamW(m.up.namedTrainableParameters());
    expect(() => other.loadStateDict(adam.stateDict())).toThrow(
      /parameter names differ \(saved only: up\.weight, up\.bias, norm\.weight and 1 more; here only: weight, bias\)/,
    );
    for (const d of [adam, sgd, other, m]) d.dispose();
  });
});

describe("random state", () => {
  it("Rng.getState/setState replay the same draws", () => {
    const r = new T.Rng(7);
    for (let i = 0; i < 5; i++) r.next();
    const s = r.getState();
    const a = [r.next(), r.normal(), r.nextU32()];
    r.setState(s);
    expect([r.next(), r.normal(), r.nextU32()]).toEqual(a);
    expect(() => r.setState(-1)).toThrow(/32-bit unsigned integer/);
  });

  it("dropout masks are a pure function of (seed, step, stream), identical on the oracle and the device", async () => {
    const b = await testBackend();
    const ones = (be: T.Backend) => T.ones([64, 33], { backend: be });
    const mask = async (be: T.Backend, key: T.DropoutKey) => {
      const x = ones(be);
      const y = T.dropout(x, 0.3, key);
      const v = Array.from(await y.data());
      x.dispose();
      y.dispose();
      return v;
    };
    const key = { seed: 5, step: 12, stream: "model.layers.0.self_attn.q_proj/default" };
    const m1 = await mask(b, key);
    expect(await mask(b, { ...key })).toEqual(m1);
    const kept = (v: number[]) => v.map((e) => e !== 0);
    expect(kept(await mask(T.cpuBackend(), key))).toEqual(kept(m1));
    expect(await mask(b, { ...key, step: 13 })).not.toEqual(m1);
    expect(await mask(b, { ...key, stream: "model.layers.1.self_attn.q_proj/default" })).not.toEqual(m1);
    const rate = m1.filter((v) => v !== 0).length / m1.length;
    expect(rate).toBeGreaterThan(0.62);
    expect(rate).toBeLessThan(0.78);
    for (const v of m1) expect([0, 1 / 0.7].some((w) => Math.abs(v - w) < 1e-6)).toBe(true);
  });
});
