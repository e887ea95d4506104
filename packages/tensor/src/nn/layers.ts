// The layers models are built from, with HF weight layouts: Linear (weight [out, in], y = x·Wᵀ + b),
// Embedding (weight [V, H]) and RMSNorm (weight [H], optional Gemma-style 1 + w).
import { Rng, tensor, type CreateOptions } from "../creation.js";
import type { DType } from "../dtype.js";
import { add } from "../ops/elementwise.js";
import { embedding } from "../ops/embedding.js";
import { matmul } from "../ops/matmul.js";
import { reshape } from "../ops/movement.js";
import { rmsNorm } from "../ops/rmsnorm.js";
import type { Backend } from "../backend/backend.js";
import { getDefaultBackend, type Tensor } from "../tensor.js";
import { Module } from "./module.js";

export interface LayerOptions {
  backend?: Backend;
  dtype?: DType;
  /** Seed for the default initialisation. */
  seed?: number;
  /** Skip random initialisation (zeros), e.g. when weights will be loaded. */
  empty?: boolean;
}

function init(shape: number[], opts: LayerOptions, gen: (r: Rng) => number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  if (!opts.empty) {
    const rng = new Rng(opts.seed ?? 0);
    for (let i = 0; i < n; i++) v[i] = gen(rng);
  }
  const o: CreateOptions = { backend: opts.backend ?? getDefaultBackend(), dtype: opts.dtype ?? "f32" };
  const t = tensor(v, shape, o);
  t.requiresGrad = o.dtype === "f32";
  return t;
}

/** y = x·Wᵀ (+ b) over the last axis; W is [out, in] as in HF checkpoints. */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LayerOptions & { bias?: boolean } = {},
  ) {
    super();
    // torch's default: kaiming_uniform(a=√5) ⇒ U(−1/√in, 1/√in), bias the same bound.
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = init([outFeatures, inFeatures], opts, (r) => (2 * r.next() - 1) * bound);
    this.bias = opts.bias ? init([outFeatures], { ...opts, seed: (opts.seed ?? 0) + 1 }, (r) => (2 * r.next() - 1) * bound) : null;
  }

  forward(x: Tensor): Tensor {
    const lead = x.shape.slice(0, -1);
    const x2 = reshape(x, [-1, this.inFeatures]);
    const y2 = matmul(x2, this.weight, { transB: true });
    if (!y2.requiresGrad) x2.dispose(); // backward reads x2 for dW
    const y = reshape(y2, [...lead, this.outFeatures]);
    y2.dispose();
    if (!this.bias) return y;
    const out = add(y, this.bias);
    y.dispose();
    return out;
  }
}

/** Row lookup in a [V, H] table. */
export class Embedding extends Module {
  weight: Tensor;
  constructor(
    readonly numEmbeddings: number,
    readonly dim: number,
    opts: LayerOptions = {},
  ) {
    super();
    this.weight = init([numEmbeddings, dim], opts, (r) => r.normal());
  }

  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

/** RMSNorm with weight [H]; `offset: 1` gives Gemma's x·r·(1 + w) (weight initialised to 0 then). */
export class RMSNorm extends Module {
  weight: Tensor;
  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
    readonly offset = 0,
    opts: LayerOptions = {},
  ) {
    super();
    this.weight = init([dim], { ...opts, empty: false }, () => (offset === 0 ? 1 : 0));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, { eps: this.eps, offset: this.offset });
  }
}
