// `npm run bench -- [--json] [matmul|dispatch|all]`: balora's WebGPU matmul and dispatch overhead,
// measured side by side with jax-js and tfjs-webgpu on the same adapter in the same process.
import { create, globals } from "webgpu";
import { jaxMatmulGflops, tfjsMatmulGflops } from "./peers.mjs";

const args = process.argv.slice(2);
const json = args.includes("--json");
const which = args.find((a) => !a.startsWith("--")) ?? "all";

// One GPU object for everyone: balora, jax-js and tfjs all use navigator.gpu.
for (const [k, v] of Object.entries(globals)) if (!(k in globalThis)) globalThis[k] = v;
if (!globalThis.navigator?.gpu) {
  Object.defineProperty(globalThis, "navigator", {
    value: { gpu: create([]), userAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/130 balora-bench" },
    configurable: true,
  });
}
const T = await import("../dist/index.js");
const gpu = await T.initWebGPU();
const adapter = gpu.description;
const software = /llvmpipe|lavapipe|swiftshader|software/i.test(adapter);

/** fp32 peak (GFLOP/s, non-tensor-core) of GPUs we may meet, to report a fraction of peak. */
const PEAKS = [
  [/H200|H100.*SXM/i, 67000],
  [/H100/i, 51200],
  [/A100/i, 19500],
  [/RTX 4090/i, 82600],
];
const peak = PEAKS.find(([re]) => re.test(adapter))?.[1];

const out = (obj) => {
  if (json) console.log(JSON.stringify(obj));
  else
    console.log(
      Object.entries(obj)
        .map(([k, v]) => `${k}=${typeof v === "number" ? +v.toPrecision(4) : v}`)
        .join("  "),
    );
};
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function baloraMatmul(n, { reps = 5, batch = 4 } = {}) {
  const a = T.rand([n, n], { low: -1, high: 1, seed: n });
  const b = T.rand([n, n], { low: -1, high: 1, seed: n + 1 });
  const run = async () => {
    const outs = [];
    for (let i = 0; i < batch; i++) outs.push(T.matmul(a, b));
    await outs[batch - 1].data();
    for (const o of outs) o.dispose();
  };
  const t0 = performance.now();
  await run();
  const firstCallMs = performance.now() - t0;
  await run();
  const times = [];
  for (let r = 0; r < reps; r++) {
    const s = performance.now();
    await run();
    times.push((performance.now() - s) / 1000);
  }
  // correctness on a few entries against a float64 dot product
  const c = T.matmul(a, b);
  const [cv, av, bv] = [await c.data(), await a.data(), await b.data()];
  let maxAbsErr = 0;
  for (const [i, j] of [
    [0, 0],
    [n - 1, n - 1],
    [n >> 1, 3 % n],
    [7 % n, n >> 2],
  ]) {
    let s = 0;
    for (let k = 0; k < n; k++) s += av[i * n + k] * bv[k * n + j];
    maxAbsErr = Math.max(maxAbsErr, Math.abs(cv[i * n + j] - s));
  }
  for (const t of [a, b, c]) t.dispose();
  return { gflops: (2 * n ** 3 * batch) / median(times) / 1e9, maxAbsErr, firstCallMs };
}

async function dispatchOverhead(count = 2000) {
  const x = T.zeros([64]);
  const step = () => {
    for (let i = 0; i < count; i++) T.add(x, 1).dispose();
  };
  const prev = gpu.submitEvery;
  gpu.submitEvery = 256;
  step();
  await gpu.sync();
  const times = [];
  for (let r = 0; r < 5; r++) {
    const s = performance.now();
    step();
    await gpu.sync();
    times.push(((performance.now() - s) * 1000) / count);
  }
  gpu.submitEvery = prev;
  x.dispose();
  return median(times);
}

if (which === "matmul" || which === "all") {
  const sizes = [256, 512, 1024, ...(software ? [] : [4096])];
  for (const n of sizes) {
    process.stderr.write(`[bench] matmul ${n}×${n}: balora, jax-js, tfjs-webgpu\n`);
    const ours = await baloraMatmul(n);
    out({
      bench: "matmul",
      n,
      impl: "balora",
      gflops: ours.gflops,
      maxAbsErr: ours.maxAbsErr,
      firstCallMs: ours.firstCallMs,
      adapter,
      ...(peak ? { fractionOfPeak: ours.gflops / peak } : {}),
    });
    const peers = [];
    for (const [impl, fn] of [
      ["jax-js", jaxMatmulGflops],
      ["tfjs-webgpu", tfjsMatmulGflops],
    ]) {
      if (n > 1024 && software) continue;
      const r = await fn(n);
      if (r.skipped) out({ bench: "matmul", n, impl, skipped: r.skipped, adapter });
      else {
        peers.push(r.gflops);
        out({ bench: "matmul", n, impl, gflops: r.gflops, maxAbsErr: r.maxAbsErr, firstCallMs: r.firstCallMs, adapter: r.adapter });
      }
    }
    if (peers.length) out({ bench: "matmul-ratio", n, balora_over_best_peer: ours.gflops / Math.max(...peers), adapter });
  }
}
if (which === "dispatch" || which === "all") {
  out({ bench: "dispatch", us: await dispatchOverhead(), adapter });
}
gpu.destroy();
process.exit(0);
