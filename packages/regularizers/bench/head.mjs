// The BA-LoRA loss head (CE + consistency + diversity + SVD, iclr2026, forward and backward) of a ~100M
// LLaMA at seq 256, fused over the vocabulary vs materialised logits, in one run: time and peak memory.
import * as T from "@balora/tensor";
import { buildModel, parseConfig } from "@balora/models";
import { llamaConfig, randomWeights, resultPrinter } from "../../../scripts/bench/common.mjs";
import { BaLoraLoss, factoredLogits, LmHead } from "../dist/index.js";

const json = process.argv.includes("--json");
const out = resultPrinter(json);
const SEQ = 256;
const vocabs = (process.env.BALORA_BENCH_VOCABS ?? "32000,256000").split(",").map(Number);
const backend = await T.initWebGPU();

// Peak device memory: the maximum of bytesInUse after every allocation (the backend keeps no peak itself).
let peak = 0;
const alloc = backend.alloc.bind(backend);
backend.alloc = (dtype, numel) => {
  const s = alloc(dtype, numel);
  peak = Math.max(peak, backend.memory().bytesInUse);
  return s;
};
const upload = backend.upload.bind(backend);
backend.upload = (dtype, values) => {
  const s = upload(dtype, values);
  peak = Math.max(peak, backend.memory().bytesInUse);
  return s;
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

for (const V of vocabs) {
  const raw = llamaConfig({ vocab: V });
  const cfg = parseConfig(raw);
  const model = buildModel(cfg, randomWeights(T, backend, 0), backend);
  const ids = T.randint([1, SEQ], 0, V, { backend, seed: 1 });
  // The denominator: the model's forward (logits), median of 3 after a warm-up.
  const forward = async () => {
    const t0 = performance.now();
    const logits = T.noGrad(() => model.forward(ids));
    await logits.data();
    logits.dispose();
    return (performance.now() - t0) / 1000;
  };
  await forward();
  const fwd = median([await forward(), await forward(), await forward()]);
  // Student and teacher hidden states (the teacher: the student's, perturbed), labels with a 32-token prompt.
  const hidden = T.noGrad(() => model.model.forward(ids));
  const teacherHidden = T.noGrad(() => T.add(hidden, T.mul(T.randn(hidden.shape, { backend, seed: 2 }), 0.05)));
  const labelValues = Array.from({ length: SEQ }, (_, i) => (i < 32 ? -100 : (i * 7919) % V));
  const labels = T.tensor(labelValues, [1, SEQ], { backend, dtype: "i32" });
  const W = model.lm_head.weight;
  const head = new LmHead(W);
  T.noGrad(() => head.gram()); // the frozen head's WᵀW, cached once per run
  await backend.sync();
  const loss = new BaLoraLoss({ preset: "iclr2026" }, { warn: () => {} });

  const region = async (path) => {
    const hs = T.detach(hidden);
    hs.requiresGrad = true;
    await backend.sync();
    const before = backend.memory().bytesInUse;
    peak = before;
    const t0 = performance.now();
    const student = path === "fused" ? factoredLogits(hs, head) : T.matmul(hs, W, { transB: true });
    const teacher = path === "fused" ? factoredLogits(teacherHidden, head) : T.noGrad(() => T.matmul(teacherHidden, W, { transB: true }));
    const r = loss.compute({ student, teacher, labels, step: 50, totalSteps: 100 });
    T.backward(r.loss);
    await hs.grad.data();
    const seconds = (performance.now() - t0) / 1000;
    const extra = peak - before;
    const value = await r.loss.item();
    BaLoraLoss.dispose(r);
    if (path !== "fused") {
      student.dispose();
      teacher.dispose();
    }
    hs.dispose();
    return { seconds, extra, value };
  };
  // The three LM-head-sized matmuls any path does (Z_s, Z_t forward; dH = dZ·W), for reading the ratios.
  const matmuls = async () => {
    const t0 = performance.now();
    const zs = T.matmul(hidden, W, { transB: true });
    const zt = T.matmul(teacherHidden, W, { transB: true });
    const dh = T.matmul(zs, W);
    await dh.data();
    for (const t of [zs, zt, dh]) t.dispose();
    return (performance.now() - t0) / 1000;
  };
  // At a 256k vocabulary every LM-head product is minutes on a CPU adapter: one timed run (kernels compiled at the first vocabulary).
  const big = V > 100_000 && V !== vocabs[0];
  await matmuls();
  const mm = big ? await matmuls() : median([await matmuls(), await matmuls(), await matmuls()]);
  const results = {};
  for (const path of ["fused", "materialised"]) {
    try {
      if (!big) await region(path); // warm-up: shader compiles
      const runs = big ? [await region(path)] : [await region(path), await region(path)];
      const best = runs.reduce((a, b) => (a.seconds < b.seconds ? a : b));
      results[path] = { ...best, extra: Math.max(...runs.map((r) => r.extra)) };
    } catch (e) {
      results[path] = { error: String(e.message ?? e).split("\n")[0] };
    }
  }
  for (const path of ["fused", "materialised"]) {
    const r = results[path];
    if (r.error) {
      out({ bench: "regularizers", vocab: V, path, seq: SEQ, skipped: `does not fit this device: ${r.error}` });
      continue;
    }
    const other = results[path === "fused" ? "materialised" : "fused"];
    out({
      bench: "regularizers",
      vocab: V,
      path,
      seq: SEQ,
      time_ratio: r.seconds / fwd,
      peak_extra_mb: r.extra / 2 ** 20,
      seconds: r.seconds,
      forward_seconds: fwd,
      head_matmuls_ratio: mm / fwd,
      beyond_head_matmuls_ratio: (r.seconds - mm) / fwd,
      ...(other.error
        ? {}
        : { peak_vs_other: r.extra / other.extra, loss_rel_diff: Math.abs(r.value - other.value) / Math.abs(other.value) }),
      adapter: backend.description,
    });
  }
  head.dispose();
  for (const t of [hidden, teacherHidden, labels, ids]) t.dispose();
  model.dispose();
}
await T.releaseWebGPU();
