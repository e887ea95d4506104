// Values and gradients of every term, for both presets and every option, against the project's
// PyTorch reference (scripts/golden/regularizers.py, float64) on fixed logits with prompt and padding rows.
import { readFileSync } from "node:fs";
import * as T from "@balora/tensor";
import { describe, expect, it } from "vitest";
import { BaLoraLoss, type RegularizersConfig } from "../src/index.js";
import { cpu, relErr, testBackend } from "./helpers.js";

interface Case {
  name: string;
  task: "nlg" | "nlu";
  config: RegularizersConfig;
  step: number;
  total: number;
  loss: number;
  taskLoss: number;
  terms: Record<string, number>;
  lambdas: Record<string, number>;
  grad: number[];
}
const golden = JSON.parse(readFileSync(new URL("./fixtures/golden.json", import.meta.url), "utf8")) as {
  nlg: { B: number; T: number; V: number; student: number[]; teacher: number[]; labels: number[] };
  nlu: { B: number; C: number; student: number[]; teacher: number[]; labels: number[] };
  cases: Case[];
};

async function run(c: Case, backend: T.Backend) {
  const d = c.task === "nlg" ? golden.nlg : golden.nlu;
  const shape = c.task === "nlg" ? [golden.nlg.B, golden.nlg.T, golden.nlg.V] : [golden.nlu.B, golden.nlu.C];
  const student = T.tensor(d.student, shape, { backend, requiresGrad: true });
  const teacher = T.tensor(d.teacher, shape, { backend });
  const labels = T.tensor(d.labels, shape.slice(0, -1), { backend, dtype: "i32" });
  const loss = new BaLoraLoss(c.config, { warn: () => {} });
  const r = loss.compute({ student, teacher, labels, step: c.step, totalSteps: c.total });
  T.backward(r.loss);
  const out = {
    loss: await r.loss.item(),
    task: await r.task.item(),
    terms: Object.fromEntries(await Promise.all(Object.entries(r.terms).map(async ([k, v]) => [k, await v.item()] as const))),
    lambdas: r.lambdas,
    grad: await student.grad!.data(),
  };
  BaLoraLoss.dispose(r);
  for (const t of [student, teacher, labels]) t.dispose();
  return out;
}

const close = (a: number, b: number, rel: number, abs: number, what: string) => {
  if (!(Math.abs(a - b) <= abs + rel * Math.abs(b))) throw new Error(`${what}: ${a} vs golden ${b}`);
};

describe("PyTorch goldens (float64 reference)", () => {
  it(`${golden.cases.length} cases on the float64 oracle: values to 1e-9, gradients to 1e-8`, async () => {
    for (const c of golden.cases) {
      const r = await run(c, cpu);
      close(r.loss, c.loss, 1e-9, 1e-12, `${c.name} loss`);
      close(r.task, c.taskLoss, 1e-9, 1e-12, `${c.name} task`);
      expect(Object.keys(r.terms).sort(), c.name).toEqual(Object.keys(c.terms).sort());
      for (const [k, v] of Object.entries(c.terms)) close(r.terms[k], v, 1e-9, 1e-12, `${c.name} ${k}`);
      for (const [k, v] of Object.entries(c.lambdas)) close(r.lambdas[k] as number, v, 1e-12, 0, `${c.name} λ ${k}`);
      expect(relErr(r.grad, c.grad), `${c.name} gradient`).toBeLessThan(1e-8);
    }
  });
  it("the same cases on the backend under test (f32): values to 2e-5, gradients to 1e-4", async () => {
    const b = await testBackend();
    for (const c of golden.cases) {
      const r = await run(c, b);
      close(r.loss, c.loss, 2e-5, 1e-6, `${c.name} loss`);
      for (const [k, v] of Object.entries(c.terms)) close(r.terms[k], v, 2e-5, 1e-6, `${c.name} ${k}`);
      expect(relErr(r.grad, c.grad), `${c.name} gradient`).toBeLessThan(1e-4);
    }
  });
});
