// Global gradient-norm clipping as torch.nn.utils.clip_grad_norm_: one sum-of-squares dispatch per
// gradient into a slot, one dispatch for the norm and the scale, one in-place scale per gradient.
import { noGrad } from "../graph.js";
import { cpuData, inputDecl, isGpu, LINEAR_WG, MAIN, outputDecl, paramsDecl, rowLanes } from "../ops/kernel.js";
import { emptyTensor, type Tensor } from "../tensor.js";

const WG = 256;

/**
 * Scales all gradients by min(1, maxNorm / (‖g‖ + 1e-6)) where ‖g‖ is the L2 norm over all of them,
 * in place. Returns the total norm (a scalar tensor on the device; read it only when you need it).
 */
export function clipGradNorm(params: Tensor[], maxNorm: number): Tensor | null {
  const grads = params.map((p) => p.grad).filter((g): g is Tensor => !!g);
  if (grads.length === 0) return null;
  return noGrad(() => {
    const b = grads[0].backend;
    const partial = emptyTensor(b, [grads.length]);
    const normScale = emptyTensor(b, [2]);
    if (isGpu(b)) {
      const lanes = rowLanes(b, WG * 4);
      grads.forEach((g, i) => {
        const params = { u: { n: g.size, go: g.offset, slot: i } };
        b.dispatch({
          key: `clip_sumsq:${lanes.key}`,
          params,
          inputs: [g.storage],
          outputs: [partial.storage],
          grid: 1,
          wgsl: () => `${paramsDecl(params)}${inputDecl(1, "g", "f32")}${outputDecl(2, "part")}${lanes.lib}
${MAIN(lanes.wg)} {
  var acc = 0.0;
  for (var j = lid.x; j < p.n; j += ${lanes.wg}u) { let v = g[p.go + j]; acc += v * v; }
  let s = wg_sum(acc, lid.x);
  if (lid.x == 0u) { part[p.slot] = s; }
}`,
        });
      });
      const pn = { u: { count: grads.length }, f: { maxNorm } };
      b.dispatch({
        key: "clip_norm",
        params: pn,
        inputs: [partial.storage],
        outputs: [normScale.storage],
        grid: 1,
        wgsl: () => `${paramsDecl(pn)}${inputDecl(1, "part", "f32")}${outputDecl(2, "ns")}
${MAIN(1)} {
  var total = 0.0;
  for (var i = 0u; i < p.count; i++) { total += part[i]; }
  let norm = sqrt(total);
  ns[0] = norm;
  ns[1] = min(p.maxNorm / (norm + 1e-6), 1.0);
}`,
      });
      for (const g of grads) {
        const ps = { u: { n: g.size, go: g.offset } };
        b.dispatch({
          key: "clip_scale",
          params: ps,
          inputs: [normScale.storage],
          outputs: [g.storage],
          grid: Math.ceil(g.size / WG),
          wgsl: () => `${paramsDecl(ps)}${inputDecl(1, "ns", "f32")}${outputDecl(2, "g")}
${MAIN(WG)} {
  let i = ${LINEAR_WG} * ${WG}u + lid.x;
  if (i < p.n) { g[p.go + i] = g[p.go + i] * ns[1]; }
}`,
        });
      }
    } else {
      let total = 0;
      for (const g of grads) {
        const d = cpuData(g);
        for (let i = 0; i < g.size; i++) total += d[g.offset + i] ** 2;
      }
      const norm = Math.sqrt(total);
      const scale = Math.min(maxNorm / (norm + 1e-6), 1);
      for (const g of grads) {
        const d = cpuData(g);
        for (let i = 0; i < g.size; i++) d[g.offset + i] *= scale;
      }
      cpuData(normScale).set([norm, scale]);
    }
    partial.dispose();
    const norm = normScale.viewAs([], [], 0);
    normScale.dispose();
    return norm;
  });
}
