// The layers models are built from, with HF weight layouts: Linear (weight [out, in], y = x·Wᵀ + b),
// Embedding (weight [V, H]) and RMSNorm (weight [H], optional Gemma-style 1 + w).
import type { Backend } from "../backend/backend.js";
import { Rng, tensor } from "../creation.js";
import type { DType } from "../dtype.js";
import { ShapeError, fmtShape } from "../errors.js";
import { add } from "../ops/elementwise.js";
import { embedding } from "../ops/embedding.js";
import { matmul } from "../ops/matmul.js";
import { reshape } from "../ops/movement.js";
import { rmsNorm } from "../ops/rmsnorm.js";
import { getDefaultBackend, type Tensor } from "../tensor.js";
import { Module } from "./module.js";

export interface LayerOptions {
  backend?: Backend;
  dtype?: DType;
  /** Seed for the default initialisation. */
  seed?: number;
}

function init(shape: number[], opts: LayerOptions, gen: (r: Rng) => number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  const rng = new Rng(opts.seed ?? 0);
  for (let i = 0; i < n; i++) v[i] = gen(rng);
  const dtype = opts.dtype ?? "f32";
  const t = tensor(v, shape, { backend: opts.backend ?? getDefaultBackend(), dtype });
  t.requiresGrad = dtype === "f32";
  return t;
}

function checkRank(layer: string, t: Tensor, rank: number): void {
  if (t.rank !== rank) throw new ShapeError(`${layer}: weight must have rank ${rank}, got ${fmtShape(t.shape)}`);
}

/** y = x·Wᵀ (+ b) over the last axis; W is [out, in] as in HF checkpoints. */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Tensor;
  bias: Tensor | null;

  /** A new layer, initialised like torch (kaiming_uniform a=√5 ⇒ U(−1/√in, 1/√in), bias the same). */
  constructor(inFeatures: number, outFeatures: number, opts?: LayerOptions & { bias?: boolean });
  /** A layer around existing tensors, e.g. checkpoint weights (frozen 16-bit ones too). */
  constructor(weight: Tensor, bias?: Tensor | null);
  constructor(a: number | Tensor, b?: number | Tensor | null, opts: LayerOptions & { bias?: boolean } = {}) {
    super();
    if (typeof a !== "number") {
      checkRank("Linear", a, 2);
      this.weight = a;
      this.bias = (b as Tensor | null | undefined) ?? null;
      [this.outFeatures, this.inFeatures] = a.shape;
      if (this.bias && (this.bias.rank !== 1 || this.bias.shape[0] !== this.outFeatures))
        throw new ShapeError(`Linear: bias ${fmtShape(this.bias.shape)} does not match weight ${fmtShape(a.shape)}`);
      return;
    }
    this.inFeatures = a;
    this.outFeatures = b as number;
    const bound = 1 / Math.sqrt(a);
    this.weight = init([this.outFeatures, a], opts, (r) => (2 * r.next() - 1) * bound);
    this.bias = opts.bias ? init([this.outFeatures], { ...opts, seed: (opts.seed ?? 0) + 1 }, (r) => (2 * r.next() - 1) * bound) : null;
  }

  forward(x: Tensor): Tensor {
    const lead = x.shape.slice(0, -1);
    const x2 = reshape(x, [-1, this.inFeatures]);
    const y2 = matmul(x2, this.weight, { transB: true });
    x2.dispose(); // the graph holds what backward needs
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
  constructor(numEmbeddings: number, dim: number, opts?: LayerOptions);
  constructor(weight: Tensor);
  constructor(a: number | Tensor, dim?: number, opts: LayerOptions = {}) {
    super();
    if (typeof a !== "number") {
      checkRank("Embedding", a, 2);
      this.weight = a;
    } else this.weight = init([a, dim as number], opts, (r) => r.normal());
  }

  get numEmbeddings(): number {
    return this.weight.shape[0];
  }
  get dim(): number {
    return this.weight.shape[1];
  }

  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

/** RMSNorm with weight [H]; `offset: 1` gives Gemma's x·r·(1 + w) (weight initialised to 0 then). */
export class RMSNorm extends Module {
  weight: Tensor;
  readonly eps: number;
  readonly offset: number;
  constructor(dimOrWeight: number | Tensor, eps = 1e-6, offset = 0, opts: LayerOptions = {}) {
    super();
    this.eps = eps;
    this.offset = offset;
    if (typeof dimOrWeight !== "number") {
      checkRank("RMSNorm", dimOrWeight, 1);
      this.weight = dimOrWeight;
    } else this.weight = init([dimOrWeight], opts, () => (offset === 0 ? 1 : 0));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, { eps: this.eps, offset: this.offset });
  }
}
