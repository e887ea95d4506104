// SGD with optional momentum and weight decay, as torch.optim.SGD (no dampening, no Nesterov):
// one fused in-place kernel per parameter updating p and its momentum buffer together.
import { noGrad } from "../graph.js";
import { fill } from "../ops/copy.js";
import { cpuData, groups, inputDecl, isGpu, LINEAR_WG, MAIN, outputDecl, paramsDecl, requireF32 } from "../ops/kernel.js";
import { tensor } from "../creation.js";
import type { Tensor } from "../tensor.js";
import { Optimizer, type ParamsInput } from "./optimizer.js";

export interface SGDOptions {
  lr?: number;
  momentum?: number;
  weightDecay?: number;
}

const WG = 256;

export class SGD extends Optimizer {
  momentum: number;
  weightDecay: number;

  constructor(params: ParamsInput, opts: SGDOptions = {}) {
    super(params, opts.lr ?? 1e-2, "SGD");
    this.momentum = opts.momentum ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
  }

  /** d = g + wd·p; with momentum buf = d at the first step, then buf = μ·buf + d, and d = buf; p −= lr·d. */
  step(): void {
    this.stepCount++;
    const any = this.params.find((p) => p.grad);
    if (!any) return;
    noGrad(() => {
      // The learning rate (a schedule changes it every step) comes from a tensor: per-parameter params stay fixed.
      const lr = isGpu(any.backend) ? tensor([this.lr], [1], { backend: any.backend }) : null;
      for (const p of this.params) {
        if (!p.grad) continue;
        requireF32("SGD", p);
        const first = !this.state.has(p);
        const buf = this.momentum ? this.slots(p, () => ({ momentum_buffer: fill(p.backend, p.shape, 0) })).momentum_buffer : null;
        sgdUpdate(p, p.grad, buf, { lr: this.lr, lrTensor: lr, momentum: this.momentum, wd: this.weightDecay, first });
      }
      lr?.dispose();
    });
  }

  protected hyper(): Record<string, number | number[]> {
    return { lr: this.lr, momentum: this.momentum, weight_decay: this.weightDecay };
  }

  protected setHyper(h: Record<string, number | number[]>): void {
    this.lr = h.lr as number;
    this.momentum = h.momentum as number;
    this.weightDecay = h.weight_decay as number;
  }
}

/** The SGD update in place (buf null without momentum; `first`: buf = d instead of μ·buf + d). */
function sgdUpdate(
  p: Tensor,
  g: Tensor,
  buf: Tensor | null,
  h: { lr: number; lrTensor: Tensor | null; momentum: number; wd: number; first: boolean },
): void {
  const n = p.size;
  const b = p.backend;
  if (n === 0) return;
  if (isGpu(b)) {
    const params = { u: { n, po: p.offset, go: g.offset, first: h.first ? 1 : 0 }, f: { mu: h.momentum, wd: h.wd } };
    b.dispatch({
      key: `sgd:${buf ? "m" : ""}`,
      params,
      inputs: [g.storage, h.lrTensor!.storage],
      outputs: buf ? [p.storage, buf.storage] : [p.storage],
      grid: groups(n, WG),
      wgsl: () => `${paramsDecl(params)}${inputDecl(1, "g", "f32")}${inputDecl(2, "lr", "f32")}${outputDecl(3, "pw")}
${buf ? outputDecl(4, "bw") : ""}
${MAIN(WG)} {
  let i = ${LINEAR_WG} * ${WG}u + lid.x;
  if (i >= p.n) { return; }
  var d = g[p.go + i] + p.wd * pw[p.po + i];
  ${buf ? "if (p.first == 0u) { d = p.mu * bw[i] + d; }\n  bw[i] = d;" : ""}
  pw[p.po + i] = pw[p.po + i] - lr[0] * d;
}`,
    });
    return;
  }
  const [pd, gd] = [cpuData(p), cpuData(g)];
  const bd = buf ? cpuData(buf) : null;
  for (let i = 0; i < n; i++) {
    let d = gd[g.offset + i] + h.wd * pd[p.offset + i];
    if (bd) {
      if (!h.first) d = h.momentum * bd[i] + d;
      bd[i] = d;
    }
    pd[p.offset + i] -= h.lr * d;
  }
}
