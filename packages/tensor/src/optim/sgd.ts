// SGD with optional momentum and weight decay, as torch.optim.SGD (no dampening, no Nesterov):
// composed from elementwise ops, written back into the parameter storage in place.
import { keep, noGrad } from "../autograd.js";
import { add, mul } from "../ops/elementwise.js";
import { copyInto } from "../ops/movement.js";
import type { Tensor } from "../tensor.js";
import { Optimizer } from "./optimizer.js";

export interface SGDOptions {
  lr?: number;
  momentum?: number;
  weightDecay?: number;
}

export class SGD extends Optimizer {
  momentum: number;
  weightDecay: number;
  private readonly buffers = new Map<Tensor, Tensor>();

  constructor(params: Tensor[], opts: SGDOptions = {}) {
    super(params, opts.lr ?? 1e-2);
    this.momentum = opts.momentum ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
  }

  step(): void {
    this.stepCount++;
    noGrad(() => {
      for (const p of this.params) {
        if (!p.grad) continue;
        let d = this.weightDecay ? add(p.grad, mul(p, this.weightDecay)) : p.grad;
        if (this.momentum) {
          const prev = this.buffers.get(p);
          const buf = keep(prev ? add(mul(prev, this.momentum), d) : mul(d, 1));
          prev?.dispose();
          this.buffers.set(p, buf);
          d = buf;
        }
        const next = add(p, mul(d, -this.lr));
        copyInto(p, next);
        next.dispose();
      }
    });
  }

  override dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
  }
}
