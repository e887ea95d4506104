// One LoRA training step (r 16 on all seven projections, AdamW on the adapters, half the labels −100)
// of random-weight LLaMAs on balora's WebGPU backend, side by side with PyTorch + peft on the CPU.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { injectAdapter } from "@balora/lora";
import * as T from "@balora/tensor";
import { llamaConfig, randomWeights, resultPrinter } from "../../../scripts/bench/common.mjs";
import { buildModel, parseConfig, supervisedRows } from "../dist/index.js";

const hfConfig = (c) => llamaConfig({ ...c, tied: false });

const args = process.argv.slice(2);
if (args.includes("--help")) {
  console.log(
    "usage: node bench/lora-step.mjs [--json] [--profile] [--config h256|h512] [--steps N]\n\nLoRA step throughput vs PyTorch CPU.",
  );
  process.exit(0);
}
const json = args.includes("--json");
const profile = args.includes("--profile");
const only = args.includes("--config") ? args[args.indexOf("--config") + 1] : null;
const steps = args.includes("--steps") ? Number(args[args.indexOf("--steps") + 1]) : 5;
const out = resultPrinter(json);
const progress = (msg) => console.error(`[lora-step] ${msg}`);

export const CONFIGS = {
  h256: { hidden: 256, layers: 4, heads: 4, intermediate: 1024, vocab: 4096, batch: 8, seq: 128 },
  h512: { hidden: 512, layers: 8, heads: 8, intermediate: 2048, vocab: 8192, batch: 4, seq: 128 },
};

async function balora(name, c) {
  const backend = await T.initWebGPU();
  const model = buildModel(parseConfig(hfConfig(c)), randomWeights(T, backend, 0), backend);
  injectAdapter(model, { r: 16, lora_alpha: 32, target_modules: "all-linear", init_lora_weights: true }, { seed: 1 });
  const opt = new T.AdamW(model.namedTrainableParameters(), { lr: 1e-4, weightDecay: 0 });
  const ids = T.randint([c.batch, c.seq], 0, c.vocab, { backend, seed: 2 });
  const labelValues = new Int32Array(c.batch * c.seq);
  const idv = await ids.data();
  for (let i = 0; i < labelValues.length; i++) labelValues[i] = i % c.seq < c.seq / 2 ? -100 : idv[i];
  // The trainer's step: only supervised positions go through the LM head and the loss.
  const sup = supervisedRows(labelValues, c.batch, c.seq);
  const rows = T.tensor(sup.rows, [sup.rows.length], { backend });
  const targets = T.tensor(sup.targets, [sup.targets.length], { backend });
  const step = async () => {
    const loss = T.tidy(() => {
      const l = T.crossEntropy(model.forward(ids, { rows }), targets);
      T.backward(l);
      return l;
    });
    const norm = T.clipGradNorm(opt.params, 1.0);
    opt.step();
    opt.zeroGrad();
    const v = await loss.item();
    loss.dispose();
    norm?.dispose();
    return v;
  };
  // Two warm-up steps: compile pipelines, create optimizer state, let the buffer pool and the
  // bind-group cache reach their steady state (from the third step on no bind group is created).
  await step();
  await step();
  await backend.sync();
  backend.resetPeak();
  const counters0 = { ...backend.counters };
  const times = [];
  for (let s = 0; s < steps; s++) {
    const t0 = performance.now();
    await step();
    times.push((performance.now() - t0) / 1000);
  }
  const peak = backend.memory().peakBytes;
  const perStep = (k) => (backend.counters[k] - counters0[k]) / steps;
  const counted = { dispatches_per_step: perStep("dispatches"), bind_groups_per_step: perStep("bindGroupsCreated") };
  times.sort((a, b) => a - b);
  const stepS = times[Math.floor(times.length / 2)];
  const row = { bench: "lora-step", config: name, hidden: c.hidden, layers: c.layers, vocab: c.vocab, tokens: c.batch * c.seq };
  let shares = {};
  if (profile) {
    backend.startProfile();
    await step();
    const entries = await backend.stopProfile();
    const total = entries.reduce((a, e) => a + e.ns, 0);
    const byTag = {};
    const byOp = {};
    for (const e of entries) {
      byTag[e.tag ?? "model"] = (byTag[e.tag ?? "model"] ?? 0) + e.ns;
      const k = `${e.tag ? `${e.tag}/` : ""}${e.op}`;
      byOp[k] ??= { ns: 0, n: 0 };
      byOp[k].ns += e.ns;
      byOp[k].n++;
    }
    shares = { gpu_ms: total / 1e6, dispatches: entries.length, lora_gpu_share: (byTag.lora ?? 0) / total };
    const top = Object.entries(byOp)
      .sort((a, b) => b[1].ns - a[1].ns)
      .slice(0, 25);
    if (args.includes("--kernels")) {
      const byKey = {};
      for (const e of entries) {
        const k = `${e.tag ? `${e.tag}/` : ""}${e.key}`;
        byKey[k] ??= { ns: 0, n: 0, flops: 0 };
        byKey[k].ns += e.ns;
        byKey[k].n++;
        byKey[k].flops += e.flops ?? 0;
      }
      for (const [k, v] of Object.entries(byKey)
        .sort((a, b) => b[1].ns - a[1].ns)
        .slice(0, 30))
        progress(
          `${k.padEnd(48)} ${(v.ns / 1e6).toFixed(1).padStart(8)} ms ${String(v.n).padStart(4)}× ` +
            `${v.flops ? `${(v.flops / v.ns).toFixed(1)} GFLOP/s` : ""}`,
        );
    }
    for (const [k, v] of top)
      progress(
        `${k.padEnd(36)} ${(v.ns / 1e6).toFixed(1).padStart(8)} ms ${String(v.n).padStart(5)}× ${((100 * v.ns) / total).toFixed(1)}%`,
      );
  }
  for (const t of [ids, rows, targets]) t.dispose();
  opt.dispose();
  model.dispose();
  return {
    ...row,
    impl: "balora",
    step_s: stepS,
    tokens_per_s: (c.batch * c.seq) / stepS,
    peak_mb: peak / 2 ** 20,
    ...counted,
    ...shares,
    adapter: backend.description,
  };
}

function torch(name, c) {
  const script = fileURLToPath(new URL("../../../scripts/bench/torch_lora_step.py", import.meta.url));
  const pys = [process.env.BALORA_BENCH_PYTHON, "python3", "/usr/bin/python3"].filter(Boolean);
  for (const py of pys) {
    const r = spawnSync(py, [script, JSON.stringify(hfConfig(c)), String(c.batch), String(c.seq), String(steps)], {
      encoding: "utf8",
      timeout: 900_000,
    });
    const line = (r.stdout ?? "").trim().split("\n").pop();
    try {
      const res = JSON.parse(line);
      if (res.skipped) continue;
      return {
        bench: "lora-step",
        config: name,
        impl: `torch ${res.torch}`,
        threads: res.threads,
        step_s: res.seconds,
        tokens_per_s: (c.batch * c.seq) / res.seconds,
      };
    } catch {}
  }
  return null;
}

for (const [name, c] of Object.entries(CONFIGS)) {
  if (only && only !== name) continue;
  progress(`${name}: balora`);
  const b = await balora(name, c);
  progress(`${name}: torch`);
  const t = torch(name, c);
  out({
    ...b,
    ...(t
      ? { torch_tokens_per_s: t.tokens_per_s, torch: t.impl, ratio: b.tokens_per_s / t.tokens_per_s }
      : { torch: "not found (set BALORA_BENCH_PYTHON to a python with torch, transformers, peft)" }),
  });
}
await T.releaseWebGPU();
