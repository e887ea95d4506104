// Forward throughput of a ~100M-parameter LLaMA (random weights, seq 256) on balora's WebGPU backend,
// side by side with a PyTorch CPU forward of the same config when python3 + torch are installed.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as T from "@balora/tensor";
import { llamaConfig, randomWeights, resultPrinter } from "../../../scripts/bench/common.mjs";
import { buildModel, parseConfig } from "../dist/index.js";

const json = process.argv.includes("--json");
const out = resultPrinter(json);
const SEQ = 256;
const raw = llamaConfig();
const cfg = parseConfig(raw);
const backend = await T.initWebGPU();
const params = { total: 0 };
const model = buildModel(
  cfg,
  randomWeights(T, backend, 0, (n) => {
    params.total += n;
  }),
  backend,
);
const { hiddenSize: H, intermediateSize: I, numLayers: L, numHeads: Hq, numKvHeads: Hkv, headDim: D, vocabSize: V } = cfg;
const matmulFlops = 2 * SEQ * (L * (H * Hq * D + 2 * H * Hkv * D + Hq * D * H + 3 * H * I) + H * V);
const attnFlops = L * 2 * 2 * SEQ * SEQ * Hq * D;
const flops = matmulFlops + attnFlops;
const ids = T.randint([1, SEQ], 0, V, { backend, seed: 1 });
const once = async () => {
  const logits = T.noGrad(() => model.forward(ids));
  await logits.data();
  logits.dispose();
};
const progress = (line) => process.stderr.write(`[bench] ${line}\n`);
progress(`forward llama-110M seq ${SEQ} on ${backend.description}: warm-up, then 3 timed runs`);
await once();
const times = [];
for (let r = 0; r < 3; r++) {
  const t0 = performance.now();
  await once();
  times.push((performance.now() - t0) / 1000);
}
const s = times.sort((a, b) => a - b)[1];
out({
  bench: "forward",
  model: "llama-110M",
  params: params.total,
  seq: SEQ,
  impl: "balora",
  tokensPerSec: SEQ / s,
  gflops: flops / s / 1e9,
  seconds: s,
  adapter: backend.description,
});

const script = fileURLToPath(new URL("../../../scripts/bench/torch_forward.py", import.meta.url));
const py = [process.env.BALORA_BENCH_PYTHON, "/usr/bin/python3", "python3"]
  .filter(Boolean)
  .find((p) => spawnSync(p, ["-c", "import torch"], { stdio: "ignore" }).status === 0);
if (!py)
  out({
    bench: "forward",
    model: "llama-110M",
    impl: "pytorch-cpu",
    skipped: "python3 with torch not found (apt-get install python3-torch)",
  });
else {
  progress("forward llama-110M with PyTorch on the CPU");
  const r = spawnSync(py, [script, JSON.stringify(raw), String(SEQ)], { encoding: "utf8" });
  if (r.status !== 0)
    out({
      bench: "forward",
      model: "llama-110M",
      impl: "pytorch-cpu",
      skipped: `torch script failed: ${r.stderr.trim().split("\n").pop()}`,
    });
  else {
    const t = JSON.parse(r.stdout.trim().split("\n").pop());
    out({
      bench: "forward",
      model: "llama-110M",
      params: params.total,
      seq: SEQ,
      impl: "pytorch-cpu",
      tokensPerSec: SEQ / t.seconds,
      gflops: flops / t.seconds / 1e9,
      seconds: t.seconds,
      threads: t.threads,
      torch: t.torch,
    });
    out({ bench: "forward-ratio", model: "llama-110M", balora_over_pytorch_cpu: t.seconds / s, adapter: backend.description });
  }
}
model.dispose();
await T.releaseWebGPU();
