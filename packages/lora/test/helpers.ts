// A tiny model-agnostic module tree (two blocks with HF-like names) for adapter tests.
import * as T from "@balora/tensor";

export class Block extends T.Module {
  q_proj: T.Module & { forward(x: T.Tensor): T.Tensor };
  v_proj: T.Module & { forward(x: T.Tensor): T.Tensor };
  down_proj: T.Module & { forward(x: T.Tensor): T.Tensor };
  constructor(backend: T.Backend, seed: number, dtype: T.DType = "f32") {
    super();
    this.q_proj = new T.Linear(6, 5, { backend, seed, dtype });
    this.v_proj = new T.Linear(6, 3, { backend, seed: seed + 1, dtype });
    this.down_proj = new T.Linear(8, 6, { backend, seed: seed + 2, dtype });
  }
  forward(x: T.Tensor): T.Tensor {
    const q = this.q_proj.forward(x);
    const v = this.v_proj.forward(x);
    return this.down_proj.forward(T.concat([q, v], -1));
  }
}

export class TinyNet extends T.Module {
  model: { layers: Block[] } & T.Module;
  lm_head: T.Linear;
  constructor(backend: T.Backend, dtype: T.DType = "f32") {
    super();
    const layers = [new Block(backend, 10, dtype), new Block(backend, 20, dtype)];
    this.model = Object.assign(new (class extends T.Module {})(), { layers });
    this.lm_head = new T.Linear(6, 4, { backend, seed: 30, dtype });
  }
  forward(x: T.Tensor): T.Tensor {
    let h = x;
    for (const b of this.model.layers) h = b.forward(h);
    return this.lm_head.forward(h);
  }
}

export { cpu, cpuOnly, maxAbsDiff as maxDiff, testBackend as getGpu } from "@balora/tensor/testing";
