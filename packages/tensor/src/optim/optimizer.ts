// The optimizer base: a parameter list, a learning rate that schedules can set each step, a step
// counter, and zeroGrad that frees gradients (like torch's set_to_none=True).
import { ArgumentError } from "../errors.js";
import type { Tensor } from "../tensor.js";

export abstract class Optimizer {
  lr: number;
  stepCount = 0;
  readonly params: Tensor[];

  constructor(params: Tensor[], lr: number) {
    if (!(lr >= 0)) throw new ArgumentError(`optimizer: learning rate must be >= 0, got ${lr}`);
    const bad = params.find((p) => !p.requiresGrad);
    if (bad) throw new ArgumentError(`optimizer: parameter ${bad.name ?? bad.toString()} does not require grad`);
    this.params = params;
    this.lr = lr;
  }

  abstract step(): void;

  /** Frees every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  dispose(): void {}
}
