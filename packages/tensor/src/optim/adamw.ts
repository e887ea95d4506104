// AdamW exactly as torch.optim.AdamW (decoupled weight decay, bias correction, eps outside the
// sqrt), one fused in-place kernel per parameter tensor updating p, m and v together.
import { ArgumentError } from "../errors.js";
import { noGrad } from "../graph.js";
import { fill } from "../ops/copy.js";
import { cpuData, groups, inputDecl, isGpu, LINEAR_WG, MAIN, outputDecl, paramsDecl, requireF32 } from "../ops/kernel.js";
import { tensor } from "../creation.js";
import type { Tensor } from "../tensor.js";
import { Optimizer, type ParamsInput } from "./optimizer.js";

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  /** Decoupled weight decay (torch default 0.01; HF Trainer uses 0). */
  weightDecay?: number;
}

const WG = 256;

export class AdamW extends Optimizer {
  betas: [number, number];
  eps: number;
  weightDecay: number;

  constructor(params: ParamsInput, opts: AdamWOptions = {}) {
    super(params, opts.lr ?? 1e-3, "AdamW");
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    const [b1, b2] = this.betas;
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new ArgumentError(`AdamW: betas must be in [0, 1), got [${b1}, ${b2}]`);
  }

  /** One update of every parameter that has a gradient (state `exp_avg`, `exp_avg_sq`, as torch names them). */
  step(): void {
    this.stepCount++;
    const t = this.stepCount;
    const [b1, b2] = this.betas;
    const h = { lr: this.lr, b1, b2, eps: this.eps, wd: this.weightDecay, bc1: 1 - b1 ** t, bc2sqrt: Math.sqrt(1 - b2 ** t) };
    const first = this.params.find((p) => p.grad);
    if (!first) return;
    noGrad(() => {
      const perStep = isGpu(first.backend) ? tensor([h.lr, h.bc1, h.bc2sqrt], [3], { backend: first.backend }) : undefined;
      for (const p of this.params) {
        if (!p.grad) continue;
        requireF32("AdamW", p);
        const s = this.slots(p, () => ({ exp_avg: fill(p.backend, p.shape, 0), exp_avg_sq: fill(p.backend, p.shape, 0) }));
        adamwUpdate(p, p.grad, s.exp_avg, s.exp_avg_sq, h, perStep);
      }
      perStep?.dispose();
    });
  }

  protected hyper(): Record<string, number | number[]> {
    return { lr: this.lr, betas: [...this.betas], eps: this.eps, weight_decay: this.weightDecay };
  }

  protected setHyper(h: Record<string, number | number[]>): void {
    this.lr = h.lr as number;
    this.betas = [...(h.betas as number[])] as [number, number];
    this.eps = h.eps as number;
    this.weightDecay = h.weight_decay as number;
  }
}

interface Hyper {
  lr: number;
  b1: number;
  b2: number;
  eps: number;
  wd: number;
  bc1: number;
  bc2sqrt: number;
}

/**
 * p ← p·(1 − lr·wd); m ← b1·m + (1−b1)·g; v ← b2·v + (1−b2)·g²; p ← p − (lr/bc1)·m / (√v/√bc2 + eps).
 * On WebGPU `stepHyper` is this step's [lr, bc1, √bc2], one tensor shared by every parameter (the CPU oracle reads h).
 */
export function adamwUpdate(p: Tensor, g: Tensor, m: Tensor, v: Tensor, h: Hyper, stepHyper: Tensor | undefined): void {
  const n = p.size;
  const b = p.backend;
  if (n === 0) return;
  if (!p.isContiguous || !g.isContiguous) throw new ArgumentError("AdamW: parameters and gradients must be contiguous");
  if (isGpu(b)) {
    // lr and the bias corrections change every step: they come from a small tensor, so the params
    // (and with them the bind group) of each parameter's dispatch stay the same from step to step.
    const perStep = stepHyper!;
    const params = { u: { n, po: p.offset, go: g.offset }, f: { b1: h.b1, b2: h.b2, eps: h.eps, wd: h.wd } };
    b.dispatch({
      key: "adamw",
      params,
      inputs: [g.storage, perStep.storage],
      outputs: [p.storage, m.storage, v.storage],
      grid: groups(n, WG),
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "g", "f32")}${inputDecl(2, "hy", "f32")}
${outputDecl(3, "pw")}${outputDecl(4, "mw")}${outputDecl(5, "vw")}
${MAIN(WG)} {
  let i = ${LINEAR_WG} * ${WG}u + lid.x;
  if (i >= p.n) { return; }
  let lr = hy[0];
  let gi = g[p.go + i];
  let w = pw[p.po + i] * (1.0 - lr * p.wd);
  let m = mw[i] + (gi - mw[i]) * (1.0 - p.b1);
  let v = vw[i] * p.b2 + gi * gi * (1.0 - p.b2);
  mw[i] = m;
  vw[i] = v;
  pw[p.po + i] = w - (lr / hy[1]) * m / (sqrt(v) / hy[2] + p.eps);
}`,
    });
    return;
  }
  const [pd, gd, md, vd] = [cpuData(p), cpuData(g), cpuData(m), cpuData(v)];
  for (let i = 0; i < n; i++) {
    const gi = gd[g.offset + i];
    const w = pd[p.offset + i] * (1 - h.lr * h.wd);
    md[i] += (gi - md[i]) * (1 - h.b1);
    vd[i] = vd[i] * h.b2 + gi * gi * (1 - h.b2);
    pd[p.offset + i] = w - ((h.lr / h.bc1) * md[i]) / (Math.sqrt(vd[i]) / h.bc2sqrt + h.eps);
  }
}
