// PiSSA initialisation time for an n×n weight at rank r (exact SVD and pissa_niter_4) on balora's
// WebGPU backend, side by side with PyTorch's CPU implementation of peft's pissa_init when available.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as T from "@balora/tensor";
import { injectAdapter, loraLayers } from "../dist/index.js";

const json = process.argv.includes("--json");
const out = (o) =>
  console.log(
    json
      ? JSON.stringify(o)
      : Object.entries(o)
          .map(([k, v]) => `${k}=${typeof v === "number" ? +v.toPrecision(4) : v}`)
          .join("  "),
  );
const backend = await T.initWebGPU();
const software = backend.traits.software;
// The exact Jacobi SVD is O(n³) per sweep: 4096² takes hours on a CPU adapter, so measure 512 there.
const cases = software
  ? [
      { n: 512, r: 128, init: "pissa" },
      { n: 4096, r: 128, init: "pissa_niter_4" },
    ]
  : [
      { n: 4096, r: 128, init: "pissa" },
      { n: 4096, r: 128, init: "pissa_niter_4" },
    ];

class One extends T.Module {
  constructor(n) {
    super();
    this.q_proj = new T.Linear(T.randn([n, n], { backend, seed: 1, std: 1 / Math.sqrt(n) }));
  }
}

const py = [process.env.BALORA_BENCH_PYTHON, "/usr/bin/python3", "python3"]
  .filter(Boolean)
  .find((p) => spawnSync(p, ["-c", "import torch"], { stdio: "ignore" }).status === 0);
const script = fileURLToPath(new URL("../../../scripts/bench/torch_pissa.py", import.meta.url));
const progress = (line) => process.stderr.write(`[bench] ${line}\n`);
for (const { n, r, init } of cases) {
  progress(`pissa-init ${init} n=${n} r=${r} on ${backend.description}`);
  const m = new One(n);
  await m.q_proj.weight.data();
  const t0 = performance.now();
  injectAdapter(m, { r, lora_alpha: r, target_modules: ["q_proj"], init_lora_weights: init });
  const [, layer] = loraLayers(m)[0];
  await layer.base_layer.weight.data(); // wait for the residual
  const seconds = (performance.now() - t0) / 1000;
  out({ bench: "pissa-init", n, r, init, impl: "balora", seconds, adapter: backend.description });
  m.dispose();
  if (!py) out({ bench: "pissa-init", n, r, init, impl: "pytorch-cpu", skipped: "python3 with torch not found" });
  else {
    progress(`pissa-init ${init} n=${n} r=${r} with PyTorch on the CPU`);
    const res = spawnSync(py, [script, String(n), String(r), init === "pissa" ? "0" : init.split("_").pop()], { encoding: "utf8" });
    if (res.status !== 0) out({ bench: "pissa-init", n, r, init, impl: "pytorch-cpu", skipped: res.stderr.trim().split("\n").pop() });
    else {
      const t = JSON.parse(res.stdout.trim().split("\n").pop());
      out({ bench: "pissa-init", n, r, init, impl: "pytorch-cpu", seconds: t.seconds, threads: t.threads, torch: t.torch });
      out({ bench: "pissa-init-ratio", n, r, init, pytorch_over_balora: t.seconds / seconds });
    }
  }
}
await T.releaseWebGPU();
