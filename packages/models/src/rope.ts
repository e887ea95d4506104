// RoPE inverse frequencies computed with transformers' float32 arithmetic (default, linear and
// llama3 scaling), so angles match HF bit for bit before the rope kernel rotates q and k.
import type { RopeConfig } from "./config.js";

const f = Math.fround;

/** inv_freq[j] = 1 / θ^(2j/D) in f32, then the scaling rule of `rope.type`. */
export function ropeInvFreq(rope: RopeConfig, headDim: number): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let j = 0; j < half; j++) {
    // torch: base ** (arange(0, dim, 2).float() / dim), all f32
    const e = f(f(2 * j) / headDim);
    inv[j] = f(1 / f(rope.theta ** e));
  }
  if (rope.type === "linear") for (let j = 0; j < half; j++) inv[j] = f(inv[j] / rope.factor);
  if (rope.type === "llama3") {
    const L0 = rope.originalMaxPositions;
    const lowWavelen = f(L0 / rope.lowFreqFactor);
    const highWavelen = f(L0 / rope.highFreqFactor);
    for (let j = 0; j < half; j++) {
      const wavelen = f(f(2 * Math.PI) / inv[j]);
      let v = wavelen > lowWavelen ? f(inv[j] / rope.factor) : inv[j];
      const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
      if (medium) {
        const smooth = f(f(f(L0 / wavelen) - rope.lowFreqFactor) / f(rope.highFreqFactor - rope.lowFreqFactor));
        v = f(f(f(f(1 - smooth) * v) / rope.factor) + f(smooth * v));
      }
      inv[j] = v;
    }
  }
  return inv;
}
