// λ schedules (exact values at given steps), presets (the DESIGN.md table) and config resolution with
// overrides and one-line errors, and the registry: built-ins, plugins, an out-of-tree package.
import * as T from "@balora/tensor";
import { describe, expect, it } from "vitest";
import {
  adaptiveFactor,
  BaLoraLoss,
  getRegularizer,
  lambdaFactor,
  loadRegularizerPlugin,
  parseSchedule,
  registeredRegularizers,
  registerRegularizer,
  resolveConfig,
} from "../src/index.js";
import { cpu, normals } from "./helpers.js";

describe("λ schedules (step = optimizer steps completed, total = max steps)", () => {
  it("constant and cosine decay to a ratio (ICLR: 0.025 → 0.0025)", () => {
    expect(lambdaFactor({ kind: "constant" }, 7, 10)).toBe(1);
    const c = parseSchedule({ kind: "cosine", finalRatio: 0.1 });
    expect(lambdaFactor(c, 0, 100)).toBe(1);
    expect(lambdaFactor(c, 50, 100)).toBeCloseTo(0.1 + 0.9 * 0.5, 12);
    expect(lambdaFactor(c, 100, 100)).toBeCloseTo(0.1, 12);
    expect(0.025 * lambdaFactor(c, 25, 100)).toBeCloseTo(0.0025 + 0.0225 * 0.5 * (1 + Math.cos(Math.PI / 4)), 12);
  });
  it("two-phase: off for ⌊0.2·S⌋ steps, then a linear ramp over max(⌊0.05·S⌋, 1)", () => {
    const s = parseSchedule("two_phase");
    expect([19, 20, 21, 22, 24, 25, 26].map((t) => lambdaFactor(s, t, 100))).toEqual([0, 0, 0.2, 0.4, 0.8, 1, 1]);
    // a short run: the ramp is at least one step
    expect([0, 1, 2, 3].map((t) => lambdaFactor(s, t, 10))).toEqual([0, 0, 0, 1]);
  });
  it("linear and quadratic warmup", () => {
    expect(lambdaFactor({ kind: "linear_warmup", warmupRatio: 0.1 }, 5, 100)).toBe(0.5);
    expect(lambdaFactor({ kind: "quadratic_warmup", warmupRatio: 0.1 }, 5, 100)).toBe(0.25);
    expect(lambdaFactor({ kind: "quadratic_warmup", warmupRatio: 0.1 }, 50, 100)).toBe(1);
  });
  it("adaptive λ1: confidence from the teacher's entropy", () => {
    expect(adaptiveFactor(0, 1000)).toBe(1);
    expect(adaptiveFactor(Math.log(1000), 1000)).toBeCloseTo(0.1, 12);
    expect(adaptiveFactor(0.5 * Math.log(1000), 1000)).toBeCloseTo(0.1 + 0.9 * 0.5, 12);
    expect(adaptiveFactor(0.5 * Math.log(8), 8, 0.2, 0.6)).toBeCloseTo(0.4, 12);
  });
  it("bad schedules fail with one line naming the field", () => {
    expect(() => parseSchedule({ kind: "exp" })).toThrow(/kind must be one of constant, cosine, two_phase/);
    expect(() => parseSchedule({ kind: "cosine", finalRatio: 2 })).toThrow(/finalRatio must be a number in \[0, 1\]/);
    expect(() => resolveConfig({ svd: { schedule: { kind: "cosine", rampRatio: 0.1 } as never } })).toThrow(
      /svd\.schedule: "cosine": unknown field "rampRatio"/,
    );
  });
});

describe("presets", () => {
  it("iclr2026 (default) is the DESIGN.md table", () => {
    const r = resolveConfig({});
    expect(r.preset).toBe("iclr2026");
    expect(r.maskMode).toBe("shifted");
    const t = Object.fromEntries(r.terms.map((x) => [x.name, x]));
    expect(Object.keys(t)).toEqual(["consistency", "diversity", "svd"]);
    expect([t.consistency.lambda, t.diversity.lambda, t.svd.lambda]).toEqual([0.025, 0.005, 0.005]);
    expect(t.consistency.schedule).toEqual({ kind: "cosine", finalRatio: 0.1 });
    expect(t.diversity.schedule).toEqual({ kind: "two_phase", offRatio: 0.2, rampRatio: 0.05 });
    expect(t.consistency.options).toMatchObject({ tau: 2, reduction: "mean", nlu: "kl" });
    expect(t.diversity.options).toMatchObject({ topK: 20 });
    expect(t.svd.options).toMatchObject({ k: 10, denominator: "frobenius", scope: "batch" });
  });
  it("v5: λ 1e-4 / 3e-4 / 1e-4 constant, k = 3, batchmean KL at τ = 1, full entropy, per-sequence Σσ, no mask", () => {
    const r = resolveConfig({ preset: "v5" });
    const t = Object.fromEntries(r.terms.map((x) => [x.name, x]));
    expect([t.consistency.lambda, t.diversity.lambda, t.svd.lambda]).toEqual([1e-4, 3e-4, 1e-4]);
    expect(r.terms.every((x) => x.schedule.kind === "constant")).toBe(true);
    expect(r.maskMode).toBe("none");
    expect(t.consistency.options).toMatchObject({ tau: 1, reduction: "batchmean", nlu: "mse" });
    expect(t.diversity.options).toMatchObject({ topK: 0 });
    expect(t.svd.options).toMatchObject({ k: 3, denominator: "sum", scope: "sequence" });
  });
  it("lora and pissa baselines have no regularizers; every value can be overridden", () => {
    expect(resolveConfig({ preset: "lora" }).terms).toEqual([]);
    expect(resolveConfig({ preset: "pissa" }).init).toBe("pissa");
    expect(resolveConfig({ preset: "lora" }).init).toBe("lora");
    const r = resolveConfig({
      preset: "lora",
      lambda1: 0.5,
      tau: 3,
      maskMode: "unshifted",
      svd: { lambda: 0.1, options: { method: "randomized", niter: 4 } },
      k: 5,
      topKEntropy: 0,
      diversity: { lambda: 0.2, schedule: "linear_warmup" },
    });
    const t = Object.fromEntries(r.terms.map((x) => [x.name, x]));
    expect(r.maskMode).toBe("unshifted");
    expect(t.consistency.lambda).toBe(0.5);
    expect(t.consistency.options.tau).toBe(3);
    expect(t.svd.options).toMatchObject({ k: 5, method: "randomized", niter: 4 });
    expect(t.diversity.options.topK).toBe(0);
    expect(t.diversity.schedule).toEqual({ kind: "linear_warmup", warmupRatio: 0.1 });
    expect(resolveConfig({ lambda3: 0 }).terms.map((x) => x.name)).toEqual(["consistency", "diversity"]);
    expect(resolveConfig({ diversity: { enabled: false } }).terms.map((x) => x.name)).toEqual(["consistency", "svd"]);
    expect(resolveConfig({}).effective).toMatchObject({ preset: "iclr2026", terms: { svd: { lambda: 0.005 } } });
  });
  it("mistakes name the field", () => {
    expect(() => resolveConfig({ preset: "v6" as never })).toThrow(/preset: must be one of iclr2026, v5, lora, pissa, got "v6"/);
    expect(() => resolveConfig({ lamda1: 1 } as never)).toThrow(/unknown field "lamda1"/);
    expect(() => resolveConfig({ lambda1: -1 })).toThrow(/lambda1: must be a number ≥ 0, got -1/);
    expect(() => resolveConfig({ k: 2.5 })).toThrow(/k: must be an integer ≥ 1/);
    expect(() => resolveConfig({ maskMode: "left" as never })).toThrow(/maskMode: must be one of shifted, unshifted, none/);
    expect(() => resolveConfig({ svd: { options: { denominator: "nuclear" } } })).toThrow(
      /svd\.options\.denominator: must be "frobenius" or "sum"/,
    );
    expect(() => resolveConfig({ consistency: { options: { reduction: "avg" } } })).toThrow(/consistency\.options\.reduction/);
    expect(() => resolveConfig({ terms: { nope: { lambda: 1 } } })).toThrow(/regularizer "nope" is not registered/);
    expect(() => resolveConfig({ svd: { lamda: 1 } as never })).toThrow(/svd\.lamda: unknown field/);
    expect(() => resolveConfig({ topKEntropy: 65 })).toThrow(/diversity\.options\.topK: must be an integer in \[0, 64\]/);
  });
});

describe("registry and plugins", () => {
  it("built-ins are listed and cannot be replaced; names are checked", () => {
    expect(registeredRegularizers().slice(0, 3)).toEqual(["consistency", "diversity", "svd"]);
    const loss = () => T.zeros([]);
    expect(() => registerRegularizer({ name: "svd", needsTeacher: false, defaults: {}, loss })).toThrow(
      /built-in regularizer and cannot be replaced/,
    );
    expect(() => registerRegularizer({ name: "Bad Name", needsTeacher: false, defaults: {}, loss })).toThrow(/must be lowercase letters/);
    expect(getRegularizer("diversity").needsTeacher).toBe(false);
    expect(getRegularizer("consistency").needsTeacher).toBe(true);
  });
  it("an out-of-tree package registers a regularizer on import; a config selects it by name and the loss uses it", async () => {
    const spec = new URL("./fixtures/balora-plugin-logit-norm/index.js", import.meta.url).href;
    const names = await loadRegularizerPlugin(spec);
    expect(names).toEqual(["logit-norm"]);
    expect(await loadRegularizerPlugin(spec)).toEqual(["logit-norm"]); // cached module: same answer
    expect(registeredRegularizers()).toContain("logit-norm");
    const loss = new BaLoraLoss({ preset: "lora", terms: { "logit-norm": { lambda: 0.5 } } }, { warn: () => {} });
    expect(loss.config.terms.map((t) => t.name)).toEqual(["logit-norm"]);
    const [B, S, V] = [2, 4, 5];
    const z = T.tensor(normals(B * S * V, 3), [B, S, V], { backend: cpu, requiresGrad: true });
    const labels = T.tensor([-100, 1, 2, 3, -100, -100, 4, 0], [B, S], { backend: cpu, dtype: "i32" });
    const r = loss.compute({ student: z, labels, step: 0, totalSteps: 10 });
    // by hand: rows counted by the shifted mask (labels[t+1] ≠ −100): (0,0) (0,1) (0,2) (1,1) (1,2)
    const zv = await z.data();
    const rows = [0, 1, 2, 5, 6].map((r) => Array.from(zv.slice(r * V, (r + 1) * V)).reduce((s, x) => s + x * x, 0) / V);
    expect(await r.terms["logit-norm"].item()).toBeCloseTo(rows.reduce((a, b) => a + b) / 5, 12);
    expect(await r.loss.item()).toBeCloseTo((await r.task.item()) + 0.5 * (await r.terms["logit-norm"].item()), 12);
    await expect(loadRegularizerPlugin("balora-plugin-does-not-exist")).rejects.toThrow(/could not be imported/);
    await expect(loadRegularizerPlugin(new URL("./helpers.ts", import.meta.url).href)).rejects.toThrow(/registered no regularizer/);
    expect(() => resolveConfig({ terms: { "logit-norm": { options: { power: -1 } } } })).toThrow(
      /terms.logit-norm|logit-norm\.options\.power/,
    );
  });
});
