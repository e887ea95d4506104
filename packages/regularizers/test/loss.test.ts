// The per-batch loss: every term 0 and nothing NaN on an all-masked batch, vacuous terms warned once per
// run, fused and materialised sources through the same loss, numItems, and the teacher at step 0.
import * as L from "@balora/lora";
import * as T from "@balora/tensor";
import { describe, expect, it } from "vitest";
import { BaLoraLoss, factoredLogits, LmHead } from "../src/index.js";
import { cpu, normals, relErr, testBackend } from "./helpers.js";

const [B, S, V, h] = [2, 8, 31, 10];

function batch(backend: T.Backend, labels: number[]) {
  const student = T.tensor(normals(B * S * V, 1, 2), [B, S, V], { backend, requiresGrad: true });
  const teacher = T.tensor(normals(B * S * V, 2, 2), [B, S, V], { backend });
  return { student, teacher, labels: T.tensor(labels, [B, S], { backend, dtype: "i32" }) };
}

describe("BaLoraLoss", () => {
  it("an all-masked batch: loss, task and every term are 0, the gradient is 0 (no NaN), for both presets", async () => {
    for (const backend of [cpu, await testBackend()])
      for (const preset of ["iclr2026", "v5"] as const) {
        const warnings: string[] = [];
        const loss = new BaLoraLoss({ preset, maskMode: "shifted" }, { warn: (m) => warnings.push(m) });
        const { student, teacher, labels } = batch(backend, new Array(B * S).fill(-100));
        const r = loss.compute({ student, teacher, labels, step: 5, totalSteps: 10 });
        T.backward(r.loss);
        const values = [await r.loss.item(), await r.task.item(), ...(await Promise.all(Object.values(r.terms).map((t) => t.item())))];
        expect(values.every((v) => v === 0)).toBe(true);
        expect(Object.keys(r.terms)).toEqual(["consistency", "diversity", "svd"]);
        expect((await student.grad!.data()).every((g) => g === 0)).toBe(true);
        expect(await loss.checkWarnings(r)).toHaveLength(1);
        expect(warnings).toEqual([expect.stringMatching(/^svd: the term is vacuous/)]);
        BaLoraLoss.dispose(r);
      }
  });

  it("fewer valid rows than k: the SVD term is 0 with zero gradient and warned once per run", async () => {
    const backend = await testBackend();
    const warnings: string[] = [];
    const loss = new BaLoraLoss({ preset: "iclr2026" }, { warn: (m) => warnings.push(m) });
    const labels = new Array(B * S).fill(-100);
    labels[3] = 5;
    labels[4] = 6; // two supervised tokens: rows 2 and 3 (shifted) < k = 10
    for (let i = 0; i < 3; i++) {
      const b = batch(backend, labels);
      const r = loss.compute({ ...b, step: 5, totalSteps: 10 });
      expect(await r.terms.svd.item()).toBe(0);
      expect(await r.terms.consistency.item()).toBeGreaterThan(0);
      await loss.checkWarnings(r);
      BaLoraLoss.dispose(r);
    }
    expect(warnings).toHaveLength(1);
  });

  it("padding rows do not change anything: a batch with padded positions equals the unpadded one", async () => {
    const backend = await testBackend();
    const loss = new BaLoraLoss({ preset: "iclr2026", k: 3 }, { warn: () => {} });
    // sequence 1 ends in 3 padding positions (label −100, arbitrary logits); sequence 0 is the reference
    const labels = [-100, -100, 3, 4, 5, 6, 7, 8, -100, 2, 3, 4, 5, -100, -100, -100];
    const b1 = batch(backend, labels);
    const r1 = loss.compute({ ...b1, step: 5, totalSteps: 10 });
    const noisy = T.tensor(
      (await b1.student.data()).map((v, i) => (i >= (S + 5) * V ? v + 100 * Math.sin(i) : v)),
      [B, S, V],
      { backend, requiresGrad: true },
    );
    const r2 = loss.compute({ student: noisy, teacher: b1.teacher, labels: b1.labels, step: 5, totalSteps: 10 });
    expect(Math.abs((await r2.loss.item()) - (await r1.loss.item()))).toBeLessThan(1e-6);
    T.backward(r2.loss);
    const g = await noisy.grad!.data();
    expect(g.slice((S + 5) * V).every((x) => x === 0)).toBe(true);
  });

  it("factored sources (hidden states + frozen LM head) give the materialised loss, terms and gradient", async () => {
    const backend = await testBackend();
    const W = T.tensor(normals(V * h, 3, 0.5), [V, h], { backend });
    const head = new LmHead(W);
    const hs = () => T.tensor(normals(B * S * h, 4), [B, S, h], { backend, requiresGrad: true });
    const ht = T.tensor(normals(B * S * h, 5), [B, S, h], { backend });
    const labels = T.tensor([-100, 4, 5, 6, 7, 8, 9, 10, -100, -100, 3, 4, 5, 6, 7, -100], [B, S], { backend, dtype: "i32" });
    const loss = new BaLoraLoss({ preset: "iclr2026", k: 4, topKEntropy: 6 }, { warn: () => {}, chunkRows: 5 });
    const results: { loss: number; terms: number[]; grad: ArrayLike<number> }[] = [];
    for (const fused of [true, false]) {
      const hidden = hs();
      const student = fused ? factoredLogits(hidden, head) : T.matmul(hidden, W, { transB: true });
      const teacher = fused ? factoredLogits(ht, head) : T.matmul(ht, W, { transB: true });
      const r = loss.compute({ student, teacher, labels, step: 5, totalSteps: 10 });
      T.backward(r.loss);
      results.push({
        loss: await r.loss.item(),
        terms: await Promise.all(Object.values(r.terms).map((t) => t.item())),
        grad: await hidden.grad!.data(),
      });
    }
    expect(Math.abs(results[0].loss - results[1].loss) / Math.abs(results[1].loss)).toBeLessThan(1e-5);
    results[0].terms.forEach((t, i) => expect(Math.abs(t - results[1].terms[i])).toBeLessThan(1e-5 * Math.abs(results[1].terms[i]) + 1e-7));
    expect(relErr(results[0].grad, results[1].grad)).toBeLessThan(1e-5);
  });

  it("numItems normalises token means over the accumulated batch; the adaptive λ1 follows the teacher's entropy", async () => {
    const backend = cpu;
    const labels = [-100, 4, 5, 6, 7, 8, 9, 10, -100, -100, 3, 4, 5, 6, 7, -100];
    const b = batch(backend, labels);
    const plain = new BaLoraLoss({ preset: "iclr2026" }, { warn: () => {} }).compute({ ...b, step: 0, totalSteps: 10 });
    const acc = new BaLoraLoss({ preset: "iclr2026" }, { warn: () => {} }).compute({ ...b, step: 0, totalSteps: 10, numItems: 24 });
    // 12 supervised rows in this micro-batch: means over 24 are half as large
    expect(await acc.task.item()).toBeCloseTo((await plain.task.item()) / 2, 12);
    expect(await acc.terms.consistency.item()).toBeCloseTo((await plain.terms.consistency.item()) / 2, 12);
    const adaptive = new BaLoraLoss({ consistency: { options: { adaptive: { min: 0.1, max: 1 } } } }, { warn: () => {} });
    const r = adaptive.compute({ ...b, step: 0, totalSteps: 10 });
    // by hand: mean teacher entropy at τ = 2 over the 12 counted rows
    const zt = await b.teacher.data();
    const mask = [1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0];
    let H = 0;
    for (let r0 = 0; r0 < B * S; r0++) {
      if (!mask[r0]) continue;
      const z = Array.from(zt.slice(r0 * V, (r0 + 1) * V)).map((x) => x / 2);
      const m = Math.max(...z);
      const lse = m + Math.log(z.reduce((s, x) => s + Math.exp(x - m), 0));
      H -= z.reduce((s, x) => s + Math.exp(x - lse) * (x - lse), 0);
    }
    const factor = 0.1 + 0.9 * (1 - Math.min(1, H / 12 / Math.log(V)));
    expect(await (r.lambdas.consistency as T.Tensor).item()).toBeCloseTo(0.025 * factor, 12);
  });
});

describe("gradient accumulation", () => {
  it("token terms summed over micro-batches equal the whole batch's; per-batch terms (SVD) are averaged", async () => {
    const labels = [-100, 4, 5, 6, 7, 8, 9, 10, -100, -100, 3, 4, 5, 6, 7, -100];
    const whole = batch(cpu, labels);
    for (const preset of ["iclr2026", "v5"] as const) {
      const config = { preset, k: 2 };
      const full = new BaLoraLoss(config, { warn: () => {} }).compute({ ...whole, step: 9, totalSteps: 10 });
      const mask = preset === "v5" ? labels.map(() => 1) : labels.map((l, i) => (i % S < S - 1 && labels[i + 1] !== -100 ? 1 : 0));
      const numItems = labels.filter((l, i) => i % S > 0 && l !== -100).length;
      const sums: Record<string, number> = { task: 0, consistency: 0, diversity: 0, svd: 0 };
      const svdAlone: number[] = [];
      for (let b = 0; b < B; b++) {
        const part = (t: T.Tensor) => T.narrow(t, 0, b, 1);
        const micro = { student: part(whole.student), teacher: part(whole.teacher), labels: part(whole.labels) };
        const loss = new BaLoraLoss(config, { warn: () => {} });
        const r = loss.compute({
          ...micro,
          step: 9,
          totalSteps: 10,
          numItems,
          accumulated: { validRows: mask.reduce((a, m) => a + m, 0), sequences: B, microBatches: B },
        });
        sums.task += await r.task.item();
        for (const k of ["consistency", "diversity", "svd"]) sums[k] += await r.terms[k].item();
        svdAlone.push(await new BaLoraLoss(config, { warn: () => {} }).compute({ ...micro, step: 9, totalSteps: 10 }).terms.svd.item());
      }
      expect(sums.task).toBeCloseTo(await full.task.item(), 12);
      expect(sums.consistency).toBeCloseTo(await full.terms.consistency.item(), 12);
      expect(sums.diversity).toBeCloseTo(await full.terms.diversity.item(), 12);
      expect(sums.svd).toBeCloseTo((svdAlone[0] + svdAlone[1]) / 2, 12);
      // iclr2026 stacks the batch's rows (a micro-batch's mean differs from the whole's); v5 is per sequence (the same)
      if (preset === "iclr2026") expect(Math.abs(sums.svd - (await full.terms.svd.item()))).toBeGreaterThan(1e-6);
      else expect(sums.svd).toBeCloseTo(await full.terms.svd.item(), 12);
    }
  });
});

/** A tiny module tree: two Linear layers and an LM head (no @balora/models). */
class Tiny extends T.Module {
  q_proj: T.Linear;
  up_proj: T.Linear;
  lm_head: T.Linear;
  constructor(backend: T.Backend) {
    super();
    this.q_proj = new T.Linear(h, h, { backend, seed: 1 });
    this.up_proj = new T.Linear(h, h, { backend, seed: 2 });
    this.lm_head = new T.Linear(h, V, { backend, seed: 3 });
  }
  hidden(x: T.Tensor): T.Tensor {
    return this.up_proj.forward(T.tanh(this.q_proj.forward(x)));
  }
}

describe("the teacher is base + initial adapter: consistency 0 at step 0", () => {
  for (const init of ["pissa", true] as const)
    it(`${init === true ? "zero-initialised LoRA" : "PiSSA"}: KL(teacher ‖ student) = 0 to f32, materialised and fused`, async () => {
      const backend = await testBackend();
      const model = new Tiny(backend);
      L.injectAdapter(model, { r: 4, lora_alpha: 8, target_modules: ["q_proj", "up_proj"], init_lora_weights: init });
      const x = T.tensor(normals(B * S * h, 7), [B, S, h], { backend });
      const labels = T.tensor([-100, 4, 5, 6, 7, 8, 9, 10, -100, -100, 3, 4, 5, 6, 7, -100], [B, S], { backend, dtype: "i32" });
      const loss = new BaLoraLoss({ preset: "iclr2026" }, { warn: () => {} });
      const student = model.hidden(x);
      const teacher = T.noGrad(() => L.withInitialAdapters(model, () => model.hidden(x)));
      const head = new LmHead(model.lm_head.weight);
      for (const [s, t] of [
        [factoredLogits(student, head), factoredLogits(teacher, head)],
        [model.lm_head.forward(student), T.noGrad(() => model.lm_head.forward(teacher))],
      ] as const) {
        const r = loss.compute({ student: s, teacher: t, labels, step: 0, totalSteps: 10 });
        expect(Math.abs(await r.terms.consistency.item())).toBeLessThan(1e-6);
        expect(await r.task.item()).toBeGreaterThan(1);
      }
      // and it is a real KL: a perturbed student disagrees
      const moved = T.add(student, 0.5);
      const r = loss.compute({
        student: factoredLogits(moved, head),
        teacher: factoredLogits(teacher, head),
        labels,
        step: 0,
        totalSteps: 10,
      });
      expect(await r.terms.consistency.item()).toBeGreaterThan(1e-4);
    });
});

describe("BaLoraLoss over many steps", () => {
  it("memory stays flat over 12 fused steps (compute, backward, dispose); skipInactive drops terms whose λ is 0", async () => {
    const backend = await testBackend();
    const W = T.tensor(normals(V * h, 3, 0.5), [V, h], { backend });
    const head = new LmHead(W);
    const labels = T.tensor([-100, 4, 5, 6, 7, 8, 9, 10, -100, -100, 3, 4, 5, 6, 7, -100], [B, S], { backend, dtype: "i32" });
    const ht = T.tensor(normals(B * S * h, 5), [B, S, h], { backend });
    const loss = new BaLoraLoss({ preset: "iclr2026", k: 4 }, { warn: () => {}, skipInactive: true });
    let before = 0;
    for (let step = 0; step < 12; step++) {
      const hidden = T.tensor(normals(B * S * h, 10 + step), [B, S, h], { backend, requiresGrad: true });
      const r = loss.compute({ student: factoredLogits(hidden, head), teacher: factoredLogits(ht, head), labels, step, totalSteps: 10 });
      // two-phase: λ2 = λ3 = 0 for steps < ⌊0.2·10⌋ = 2, and at step 2 the ramp starts from 0
      expect(Object.keys(r.terms)).toEqual(step < 3 ? ["consistency"] : ["consistency", "diversity", "svd"]);
      T.backward(r.loss);
      await hidden.grad!.data();
      BaLoraLoss.dispose(r);
      hidden.dispose();
      if (step === 4) before = backend.memory().bytesInUse;
      if (step > 4) expect(backend.memory().bytesInUse).toBe(before);
    }
    head.dispose();
  });
});
