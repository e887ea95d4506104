// Synthetic training runs for the report tests (shaped like a real BA-LoRA run: decaying loss, cosine
// λ1, two-phase λ2/λ3, warmup + cosine learning rate, eval_* every ten steps).
import type { ReportRun, StepMetrics } from "../src/index.js";

/** Synthetic metrics of a run of `n` steps (a cosine λ1, two-phase λ2/λ3, a warmup lr). */
export function fakeMetrics(n: number, scale = 1): StepMetrics[] {
  return Array.from({ length: n }, (_, s) => {
    const task = scale * (2.5 * Math.exp(-s / 15) + 0.4 + 0.05 * Math.sin(s));
    const on = s < 0.2 * n ? 0 : Math.min(1, (s - 0.2 * n) / Math.max(1, 0.05 * n));
    return {
      step: s + 1,
      epoch: (s + 1) / n,
      loss: task + 0.01,
      task_loss: task,
      consistency: 0.02 * (1 - Math.exp(-s / 10)),
      diversity: -1.5 - 0.3 * Math.exp(-s / 20),
      svd: -2.1 + 0.1 * Math.cos(s / 5),
      lambda1: 0.0025 + 0.0225 * 0.5 * (1 + Math.cos((Math.PI * s) / n)),
      lambda2: 0.005 * on,
      lambda3: 0.005 * on,
      lr: s < 3 ? (2e-4 * s) / 3 : 2e-4 * 0.5 * (1 + Math.cos((Math.PI * (s - 3)) / (n - 3))),
      grad_norm: 1 + Math.exp(-s / 8),
      tokens: 512,
      tokens_per_s: 300 + 10 * Math.sin(s),
      elapsed_s: (s + 1) * 1.7,
      ...(s % 10 === 9 ? { eval_loss: task + 0.1, eval_accuracy: 0.2 + s / (n * 2) } : {}),
    };
  });
}

export const twoRuns = (): ReportRun[] => [
  { name: "ba-lora <iclr2026>", config: { preset: "iclr2026", lr: 2e-4, lora: { r: 8, alpha: 8 } }, metrics: fakeMetrics(60) },
  { name: "pissa", config: { preset: "pissa", lr: 2e-4, lora: { r: 8, alpha: 16 } }, metrics: fakeMetrics(40, 1.2) },
];
