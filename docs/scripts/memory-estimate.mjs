// The device-memory estimates in README.md and docs/training.md, as arithmetic anyone can rerun and check:
// base weights, adapter + AdamW state, and activations calibrated on a measured balora step (formula below).
//
// usage: node docs/scripts/memory-estimate.mjs [--batch B] [--seq T] [--json]
//
// Activations per decoder layer and token, in f32 (what the engine keeps for the backward pass): the two norm
// inputs and outputs (4h), q and the attention output (2·q), k and v (2·kv), gate, up and their product (3I),
// and the attention scores and probabilities (2·heads·T). Measured with packages/ba-lora/bench/step.mjs
// (--only gradient-checkpointing, h 768, I 2048, 12 heads, seq 512, 2/4/8 layers on lavapipe, 2026-12-02):
// 48.2 MiB per layer without checkpointing, where this formula gives 48.0 MiB (the 0.4% is the factor
// below); with --gradient-checkpointing 1.50 MiB per layer = the layer's input (B·T·h·4 bytes), plus one
// layer recomputed at a time. The teacher's no-grad forward adds about one layer: a BA-LoRA step (bench/step.mjs
// --only step, seq 256, 2 layers) took 17.5 MiB more than the LoRA step, where one layer + its output is 18.8 MiB.

const MODELS = {
  "Llama-2-7B": { h: 4096, I: 11008, L: 32, heads: 32, kv: 32, hd: 128, V: 32000, tied: false, r: 128 },
  "Mistral-7B-v0.1": { h: 4096, I: 14336, L: 32, heads: 32, kv: 8, hd: 128, V: 32000, tied: false, r: 64 },
  "Gemma-7B": { h: 3072, I: 24576, L: 28, heads: 16, kv: 16, hd: 256, V: 256000, tied: true, r: 64 },
  "TinyLlama-1.1B": { h: 2048, I: 5632, L: 22, heads: 32, kv: 4, hd: 64, V: 32000, tied: false, r: 128 },
  "SmolLM2-1.7B": { h: 2048, I: 8192, L: 24, heads: 32, kv: 32, hd: 64, V: 49152, tied: true, r: 128 },
  "Llama-3.2-1B": { h: 2048, I: 8192, L: 16, heads: 32, kv: 8, hd: 64, V: 128256, tied: true, r: 128 },
};
const CALIBRATION = 48.2 / 48.0;
const GB = 1e9;
const HEAD_BYTES = 64 * 2 ** 20; // fused loss head: two 16 MiB logit chunks, the Gram matrix, dH chunks (measured 34 MB)

const arg = (name, dflt) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : dflt);
const batch = arg("--batch", 4);
const seq = arg("--seq", 512);

/** Parameter counts of an HF LLaMA/Mistral/Gemma config, and the adapter's at rank r on all seven projections. */
function counts(m) {
  const q = m.heads * m.hd;
  const kv = m.kv * m.hd;
  const layer = m.h * q + 2 * m.h * kv + q * m.h + 3 * m.h * m.I + 2 * m.h;
  const params = m.V * m.h * (m.tied ? 1 : 2) + m.L * layer + m.h;
  const shapes = [
    [m.h, q],
    [m.h, kv],
    [m.h, kv],
    [q, m.h],
    [m.h, m.I],
    [m.h, m.I],
    [m.I, m.h],
  ];
  const adapter = m.L * shapes.reduce((s, [i, o]) => s + m.r * (i + o), 0);
  return { params, adapter, q, kv };
}

function estimate(name, m, B, T) {
  const { params, adapter, q, kv } = counts(m);
  const tokens = B * T;
  const perLayer = 4 * tokens * (4 * m.h + 2 * q + 2 * kv + 3 * m.I + 2 * m.heads * T) * CALIBRATION;
  const teacher = perLayer + 4 * tokens * m.h; // the teacher's no-grad forward: one layer at a time, its final hidden states
  const activations = m.L * perLayer + teacher + HEAD_BYTES;
  const checkpointed = m.L * 4 * tokens * m.h + perLayer + teacher + HEAD_BYTES;
  const state = adapter * 4 * 5; // f32 adapter, its gradient, AdamW m and v, the initial state (the teacher)
  const bf16 = params * 2;
  return {
    model: name,
    params_b: params / 1e9,
    r: m.r,
    adapter_m: adapter / 1e6,
    batch: B,
    seq: T,
    weights_bf16_gb: bf16 / GB,
    weights_f32_gb: (params * 4) / GB,
    adapter_state_gb: state / GB,
    activations_gb: activations / GB,
    activations_checkpointed_gb: checkpointed / GB,
    total_gb: (bf16 + state + activations) / GB,
    total_checkpointed_gb: (bf16 + state + checkpointed) / GB,
  };
}

const rows = Object.entries(MODELS).map(([n, m]) => estimate(n, m, batch, seq));
if (process.argv.includes("--json")) for (const r of rows) console.log(JSON.stringify(r));
else {
  const f = (x) => x.toFixed(1);
  console.log(`batch ${batch} × seq ${seq}, bf16 base, f32 adapter and activations (GB = 1e9 bytes)\n`);
  console.log(
    "| model | params | r = α | adapter | bf16 weights (f32) | adapter + AdamW | activations | total | with --gradient-checkpointing |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const r of rows)
    console.log(
      `| ${r.model} | ${r.params_b.toFixed(2)} B | ${r.r} | ${f(r.adapter_m)} M | ${f(r.weights_bf16_gb)} (${f(r.weights_f32_gb)}) | ` +
        `${f(r.adapter_state_gb)} | ${f(r.activations_gb)} | **${f(r.total_gb)}** | ` +
        `**${f(r.total_checkpointed_gb)}** (activations ${f(r.activations_checkpointed_gb)}) |`,
    );
}
