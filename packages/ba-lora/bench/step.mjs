// A BA-LoRA (iclr2026, PiSSA) training step vs a plain LoRA step through the real Trainer on a ~110M LLaMA, in one run:
// time and peak device memory ratios, PyTorch CPU LoRA tokens/s beside them; and gradient checkpointing's activation memory.
import { spawnSync } from "node:child_process";
import { availableParallelism, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { injectAdapter, withInitialAdapters } from "@balora/lora";
import { buildModel, parseConfig } from "@balora/models";
import { BaLoraLoss, factoredLogits, resolveConfig } from "@balora/regularizers";
import * as T from "@balora/tensor";
import { llamaConfig, randomWeights, resultPrinter } from "../../../scripts/bench/common.mjs";
import { collateCausal } from "../dist/data/instruction.js";
import { batchTensors } from "../dist/train/batch-loss.js";
import { regularizersConfig, resolveSettings } from "../dist/train/config.js";
import { maskedRows, Trainer } from "../dist/train/trainer.js";

const USAGE = `usage: node packages/ba-lora/bench/step.mjs [--json] [--profile] [--steps N] [--only step|gradient-checkpointing]
                                          [--warmup N] [--seq S] [--gc-seq S] [--layers L] [--no-torch] [--profile-rounds N]

One optimizer step of the ~110M LLaMA (H 768, 12 layers, 12 heads, I 2048, V 32000 tied; random weights, batch 1,
half of each sequence a masked prompt, LoRA r 16 on q,k,v,o,gate,up,down) through balora's Trainer on WebGPU:

  step                     plain LoRA (preset lora, init lora) and BA-LoRA (preset iclr2026, init pissa_niter_4) at
                           step 50 of 100 (every λ on), steps interleaved: median time, peak device memory, their ratios
                           (targets: time ≤ 1.4, memory ≤ 1.1), and a PyTorch CPU LoRA step of the same config
                           (scripts/bench/torch_lora_step.py; BALORA_BENCH_PYTHON picks the interpreter)
  gradient-checkpointing   a LoRA step at seq 512 with and without gradient checkpointing: activation memory (peak
                           during the step minus what is held before it; target ≥ 3× less) and the first steps'
                           loss and grad_norm (identical updates)

  --json          one JSON object per line on stdout; progress goes to stderr
  --profile       also phase-split steps (student forward, teacher forward, loss, backward, optimizer), the setups
                  alternated: per phase the least wall, CPU and GPU time (per-dispatch timestamps), GFLOP and memory,
                  one {"bench":"step-profile"} line per setup, the top kernels on stderr
  --profile-rounds N   phase-split steps per setup (default 2)
  --steps N       timed steps per setup (default 3), after the warm-up steps
  --warmup N      warm-up steps per setup, alternated too (default 2: pipelines, optimizer state, buffer pool)
  --seq S         sequence length of the step benchmark (default 256)
  --gc-seq S      sequence length of the gradient-checkpointing benchmark (default 512)
  --layers L      decoder layers (default 12; fewer for a quick trial run)
  --no-torch      skip the PyTorch peer
  --help          print this help`;

const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  console.log(USAGE);
  process.exit(0);
}
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const json = args.includes("--json");
const profile = args.includes("--profile");
const steps = Number(opt("--steps", 3));
const warmups = Math.max(1, Number(opt("--warmup", 2)));
const seq = Number(opt("--seq", 256));
const gcSeq = Number(opt("--gc-seq", 512));
const layers = Number(opt("--layers", 12));
const only = opt("--only", null);
const profileRounds = Number(opt("--profile-rounds", 2));
const out = resultPrinter(json);
const progress = (msg) => console.error(`[ba-lora step] ${msg}`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const MB = 2 ** 20;
const round = (x, d = 4) => +x.toPrecision(d);

const HF_CONFIG = llamaConfig({ layers });
const TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
const R = 16;
const ALPHA = 32;
const PAD = 0;
const TOTAL_STEPS = 100;
const START_STEP = 50; // iclr2026: λ2 and λ3 are off for the first 20% of the run; at 50 of 100 every term is on

const backend = await T.initWebGPU();
const cfg = parseConfig(HF_CONFIG);

/** Random weights built in memory (the same values for the same seed: the forward bench's recipe). */
function randomModel(seed) {
  return buildModel(cfg, randomWeights(T, backend, seed), backend);
}

/** Token-id examples of length S: the first half a prompt (labels −100), the second half supervised. */
function examplesOf(S, n, seed) {
  const rng = new T.Rng(seed);
  return Array.from({ length: n }, (_, line) => {
    const inputIds = Array.from({ length: S }, () => 1 + (rng.nextU32() % (cfg.vocabSize - 1)));
    const labels = inputIds.map((id, t) => (t < S / 2 ? -100 : id));
    return { line: line + 1, inputIds, labels, truncated: false };
  });
}

/** A model with its adapter, loss and Trainer, as `balora train` sets them up (random weights, no download). */
function setup(name, { preset, init, S, gradientCheckpointing = false }) {
  const before = backend.memory().bytesInUse;
  const t0 = performance.now();
  const model = randomModel(0);
  const settings = resolveSettings({
    preset,
    init,
    r: R,
    alpha: ALPHA,
    target: TARGETS,
    lr: 1e-4,
    batch_size: 1,
    max_steps: TOTAL_STEPS,
    warmup_ratio: 0,
    max_length: S,
    save_steps: 0,
    gradient_checkpointing: gradientCheckpointing,
  });
  const t1 = performance.now();
  injectAdapter(
    model,
    {
      r: R,
      lora_alpha: ALPHA,
      lora_dropout: 0,
      target_modules: settings.target,
      init_lora_weights: init === "lora" ? true : init,
    },
    { seed: settings.seed },
  );
  const initS = (performance.now() - t1) / 1000;
  const loss = new BaLoraLoss(resolveConfig(regularizersConfig(settings)), { warn: (m) => progress(`${name}: ${m}`) });
  const examples = examplesOf(S, 8, 7);
  const trainer = new Trainer({ model, examples, padTokenId: PAD, settings, loss, warn: (m) => progress(`${name}: ${m}`) });
  progress(`${name}: built in ${((t1 - t0) / 1000).toFixed(1)} s, ${init} init ${initS.toFixed(1)} s (not part of the step)`);
  return { name, model, trainer, loss, settings, examples, before, initS, own: 0, times: [], cpu: [], rows: [], extra: [] };
}

/** CPU seconds of this process since `c0` (lavapipe's threads included: the device's work, whatever else the machine runs). */
const cpuSeconds = (c0) => {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
};

/** One trainer step, synchronised; records its time, its row and its peak above the bytes held before it. */
async function timedStep(x) {
  await backend.sync();
  const held = backend.memory().bytesInUse;
  backend.resetPeak();
  const d0 = backend.counters.dispatches;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const row = await x.trainer.trainStep();
  await backend.sync();
  const s = (performance.now() - t0) / 1000;
  const extra = backend.memory().peakBytes - held;
  return { s, cpu: cpuSeconds(c0), row, extra, held, dispatches: backend.counters.dispatches - d0 };
}

/**
 * A warm-up step (pipelines compiled, optimizer state created); after the first, what the setup holds between steps
 * (measured before the next setup is built: `before` counts only what existed before this one).
 */
async function warm(x) {
  const w = await timedStep(x);
  if (!x.warmed) x.own = backend.memory().bytesInUse - x.before;
  x.warmed = true;
  progress(`${x.name}: warm-up step ${w.s.toFixed(1)} s, holds ${(x.own / MB).toFixed(1)} MiB between steps`);
  return w;
}

/** The machine's 1-minute load average and core count (the machine may be shared: its other work slows the steps). */
const machineLoad = () => ({ load_1m: round(loadavg()[0], 3), cores: availableParallelism() });

function dispose(x) {
  x.trainer.dispose();
  x.model.dispose();
}

/**
 * The trainer's step for one micro-batch, split into phases (student forward, teacher forward, loss, backward,
 * optimizer), each synchronised: wall time, bytes above the step's start, and with --profile the GPU time per dispatch.
 */
async function phasedStep(x) {
  const { trainer, model, loss } = x;
  const head = trainer.head; // the Trainer's fused LM head (with its cached WᵀW)
  const s = trainer.step;
  const [idx] = trainer.microBatches(s);
  const batch = collateCausal(
    idx.map((i) => x.examples[i]),
    PAD,
  );
  const accumulated = {
    validRows: maskedRows(batch.labels, batch.batchSize, batch.seqLength, loss.config.maskMode),
    sequences: batch.batchSize,
    microBatches: 1,
  };
  await backend.sync();
  const held = backend.memory().bytesInUse;
  const phases = {};
  const kernels = {};
  let student = null;
  let teacher = null;
  let result = null;
  let tensors = null;
  const phase = async (name, fn) => {
    await backend.sync();
    backend.resetPeak();
    if (profile) backend.startProfile();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    let entries = [];
    if (profile) entries = await backend.stopProfile();
    else await backend.sync();
    const p = {
      wall_ms: round(performance.now() - t0),
      cpu_ms: round(1000 * cpuSeconds(c0)),
      peak_above_held_mb: round((backend.memory().peakBytes - held) / MB),
    };
    if (profile) {
      p.gpu_ms = round(entries.reduce((a, e) => a + e.ns, 0) / 1e6);
      p.gflop = round(entries.reduce((a, e) => a + (e.flops ?? 0), 0) / 1e9);
      p.dispatches = entries.length;
      for (const e of entries) {
        const k = `${name} ${e.tag ? `${e.tag}/` : ""}${e.key}`;
        kernels[k] ??= { ns: 0, n: 0 };
        kernels[k].ns += e.ns;
        kernels[k].n++;
      }
    }
    phases[name] = p;
  };
  const forward = (ids, mask) => factoredLogits(model.model.forward(ids, { attentionMask: mask }), head);
  await phase("inputs", () => {
    tensors = batchTensors(batch, backend);
  });
  await phase("student_forward", () => {
    student = forward(tensors.ids, tensors.mask);
  });
  if (loss.needsTeacher)
    await phase("teacher_forward", () => {
      teacher = withInitialAdapters(model, () => T.noGrad(() => forward(tensors.ids, tensors.mask)));
    });
  await phase("loss", () => {
    result = loss.compute({
      student,
      teacher,
      labels: tensors.labels,
      step: s,
      totalSteps: trainer.totalSteps,
      numItems: batch.supervisedTokens,
      accumulated,
    });
    for (const t of [student, teacher]) t?.hidden.dispose();
  });
  await phase("backward", () => T.backward(result.loss));
  await phase("optimizer", () => {
    const norm = T.clipGradNorm(trainer.optimizer.params, trainer.settings.max_grad_norm);
    trainer.optimizer.lr = trainer.lrAt(s);
    trainer.optimizer.step();
    trainer.optimizer.zeroGrad();
    norm?.dispose();
  });
  BaLoraLoss.dispose(result);
  for (const t of Object.values(tensors)) t.dispose();
  return { phases, kernels };
}

/**
 * Phase-split steps of each setup, alternated for `rounds` rounds; each time the minimum over the rounds (other
 * load on the machine only adds time), the rest from the last round. Prints the top kernels on stderr.
 */
async function profileSetups(setups, rounds) {
  const runs = Object.fromEntries(setups.map((x) => [x.name, []]));
  for (let i = 0; i < rounds; i++) for (const x of i % 2 ? [...setups].reverse() : setups) runs[x.name].push(await phasedStep(x));
  const result = {};
  for (const x of setups) {
    const rs = runs[x.name];
    const phases = {};
    for (const name of Object.keys(rs[0].phases)) {
      phases[name] = { ...rs.at(-1).phases[name] };
      for (const k of ["wall_ms", "cpu_ms", "gpu_ms"])
        if (k in phases[name]) phases[name][k] = Math.min(...rs.map((r) => r.phases[name][k]));
    }
    const kernels = {};
    for (const k of Object.keys(rs[0].kernels))
      kernels[k] = { n: rs[0].kernels[k].n, ns: Math.min(...rs.map((r) => r.kernels[k]?.ns ?? 0)) };
    const total = Object.values(kernels).reduce((a, k) => a + k.ns, 0);
    if (profile) {
      progress(`${x.name}: top kernels of the phase-split step (${(total / 1e6).toFixed(0)} ms GPU, minimum of ${rounds})`);
      for (const [k, v] of Object.entries(kernels)
        .sort((a, b) => b[1].ns - a[1].ns)
        .slice(0, 30))
        progress(
          `  ${k.padEnd(64)} ${(v.ns / 1e6).toFixed(1).padStart(8)} ms ${String(v.n).padStart(5)}× ${((100 * v.ns) / total).toFixed(1)}%`,
        );
    }
    result[x.name] = phases;
  }
  return result;
}

/** The PyTorch CPU LoRA step of the same config (peft, r 16, all seven projections), or why it did not run. */
function torchPeer(S, n) {
  const script = fileURLToPath(new URL("../../../scripts/bench/torch_lora_step.py", import.meta.url));
  const pys = [process.env.BALORA_BENCH_PYTHON, "python3", "/usr/bin/python3"].filter(Boolean);
  let why = "python3 not found";
  for (const py of pys) {
    const r = spawnSync(py, [script, JSON.stringify(HF_CONFIG), "1", String(S), String(n)], { encoding: "utf8", timeout: 900_000 });
    if (r.error) continue;
    const line = (r.stdout ?? "").trim().split("\n").pop();
    try {
      const res = JSON.parse(line);
      if (res.skipped) {
        why = `${py}: ${res.skipped}`;
        continue;
      }
      return { torch: `torch ${res.torch} (${py}, ${res.threads} threads)`, step_s: res.seconds, tokens_per_s: S / res.seconds };
    } catch {
      why = `${py}: ${(r.stderr ?? "").trim().split("\n").pop() || `exit ${r.status}`}`;
    }
  }
  return { skipped: `${why} (set BALORA_BENCH_PYTHON to a python with torch, transformers, peft)` };
}

async function stepBench() {
  progress(`step: ${layers} layers, seq ${seq}, r ${R} on ${TARGETS.length} projections, on ${backend.description}`);
  const loadBefore = machineLoad();
  const lora = setup("lora", { preset: "lora", init: "lora", S: seq });
  lora.trainer.step = START_STEP;
  await warm(lora);
  const ba = setup("ba-lora", { preset: "iclr2026", init: "pissa_niter_4", S: seq });
  ba.trainer.step = START_STEP;
  await warm(ba);
  for (let i = 1; i < warmups; i++) for (const x of i % 2 ? [ba, lora] : [lora, ba]) await warm(x);
  progress(`teacher forward: lora ${lora.loss.needsTeacher}, ba-lora ${ba.loss.needsTeacher}`);
  // Interleaved (A B, B A, ...) so that drift in the machine's load falls on both alike.
  for (let i = 0; i < steps; i++)
    for (const x of i % 2 ? [ba, lora] : [lora, ba]) {
      const r = await timedStep(x);
      x.times.push(r.s);
      x.cpu.push(r.cpu);
      x.extra.push(r.extra);
      x.rows.push(r.row);
      x.dispatches = r.dispatches;
      progress(`${x.name}: step ${i + 1}/${steps} ${r.s.toFixed(2)} s (${r.cpu.toFixed(1)} s CPU), loss ${Number(r.row.loss).toFixed(4)}`);
    }
  const summary = (x) => {
    const extra = Math.max(...x.extra);
    return {
      step_s: median(x.times),
      min_s: Math.min(...x.times),
      cpu_s: median(x.cpu),
      peak: x.own + extra,
      held: x.own,
      extra,
      last: x.rows.at(-1),
    };
  };
  const a = summary(lora);
  const b = summary(ba);
  // With --profile: the work of each step (GFLOP and GPU time summed over its phases; FLOPs do not depend on the load).
  const work = {};
  if (profile) {
    const phases = await profileSetups([lora, ba], profileRounds);
    for (const [setup, p] of Object.entries(phases)) {
      out({ bench: "step-profile", setup, seq, rounds: profileRounds, phases: p });
      const sum = (k) => Object.values(p).reduce((acc, ph) => acc + (ph[k] ?? 0), 0);
      work[setup] = { gflop: sum("gflop"), gpu_ms: sum("gpu_ms") };
    }
  }
  const lambdas = Object.fromEntries(["lambda1", "lambda2", "lambda3"].map((k) => [k, b.last[k]]));
  dispose(lora);
  dispose(ba);
  const timeRatio = b.step_s / a.step_s;
  const memRatio = b.peak / a.peak;
  const row = {
    bench: "step",
    model: `llama-110M (h768, ${layers} layers, I 2048, V 32000 tied)`,
    seq,
    batch: 1,
    r: R,
    targets: TARGETS.length,
    lora_step_s: round(a.step_s),
    balora_step_s: round(b.step_s),
    lora_tokens_per_s: round(seq / a.step_s),
    balora_tokens_per_s: round(seq / b.step_s),
    lora_peak_mb: round(a.peak / MB),
    balora_peak_mb: round(b.peak / MB),
    lora_held_mb: round(a.held / MB),
    balora_held_mb: round(b.held / MB),
    lora_step_extra_mb: round(a.extra / MB),
    balora_step_extra_mb: round(b.extra / MB),
    time_ratio: round(timeRatio),
    mem_ratio: round(memRatio),
    time_ratio_of_fastest: round(b.min_s / a.min_s),
    ...(profile && {
      lora_gflop: round(work.lora.gflop),
      balora_gflop: round(work["ba-lora"].gflop),
      flop_ratio: round(work["ba-lora"].gflop / work.lora.gflop),
      gpu_time_ratio_phase_split: round(work["ba-lora"].gpu_ms / work.lora.gpu_ms),
    }),
    lora_step_cpu_s: round(a.cpu_s),
    balora_step_cpu_s: round(b.cpu_s),
    lora_dispatches: lora.dispatches,
    balora_dispatches: ba.dispatches,
    cpu_time_ratio: round(b.cpu_s / a.cpu_s),
    time_target: 1.4,
    mem_target: 1.1,
    time_met: timeRatio <= 1.4,
    mem_met: memRatio <= 1.1,
    balora_init: "pissa_niter_4",
    pissa_init_s: round(ba.initS),
    at_step: `${START_STEP} of ${TOTAL_STEPS}`,
    ...lambdas,
    steps,
    warmup_steps: warmups,
    load_1m_before: loadBefore.load_1m,
    load_1m_after: machineLoad().load_1m,
    cores: loadBefore.cores,
    adapter: backend.description,
  };
  if (args.includes("--no-torch")) row.torch = "skipped (--no-torch)";
  else {
    progress("step: PyTorch CPU LoRA step of the same config");
    const t = torchPeer(seq, steps);
    if (t.skipped) row.torch = t.skipped;
    else
      Object.assign(row, {
        torch: t.torch,
        torch_step_s: round(t.step_s),
        torch_tokens_per_s: round(t.tokens_per_s),
        lora_over_torch_tokens_per_s: round(t.step_s / a.step_s),
        balora_over_torch_tokens_per_s: round(t.step_s / b.step_s),
      });
  }
  if (!row.time_met || !row.mem_met)
    progress(
      `a target is missed (time ${row.time_ratio} vs 1.4, memory ${row.mem_ratio} vs 1.1)${profile ? "" : ": rerun with --profile"}`,
    );
  out(row);
}

async function checkpointingBench() {
  const largest = cfg.vocabSize * cfg.hiddenSize * 4; // the embedding; activations at batch 1 are far smaller
  const limit = backend.limits.maxStorageBufferBindingSize;
  const sizes = `largest tensor ${(largest / MB).toFixed(0)} MiB, binding limit ${limit / MB} MiB`;
  progress(`gradient-checkpointing: ${layers} layers, seq ${gcSeq}; ${sizes}`);
  const first = {};
  const ckpt = setup("checkpointing", { preset: "lora", init: "lora", S: gcSeq, gradientCheckpointing: true });
  first[ckpt.name] = await warm(ckpt);
  const plain = setup("no-checkpointing", { preset: "lora", init: "lora", S: gcSeq });
  first[plain.name] = await warm(plain);
  const second = {};
  for (const x of [ckpt, plain]) second[x.name] = await timedStep(x);
  const read = async (x) => Object.fromEntries(await Promise.all(x.trainer.optimizer.params.map(async (p, i) => [i, await p.data()])));
  const [pa, pb] = [await read(plain), await read(ckpt)];
  let paramDiff = 0;
  for (const k of Object.keys(pa)) for (let i = 0; i < pa[k].length; i++) paramDiff = Math.max(paramDiff, Math.abs(pa[k][i] - pb[k][i]));
  const diff = (rows, k) => Math.abs(Number(rows["no-checkpointing"].row[k]) - Number(rows.checkpointing.row[k]));
  const act = (x) => second[x.name].extra;
  const row = {
    bench: "gradient-checkpointing",
    model: `llama-110M (h768, ${layers} layers, I 2048, V 32000 tied)`,
    seq: gcSeq,
    batch: 1,
    r: R,
    fits_binding_limit: largest <= limit,
    held_mb: round(plain.own / MB),
    held_checkpointed_mb: round(ckpt.own / MB),
    activation_mb: round(act(plain) / MB),
    activation_checkpointed_mb: round(act(ckpt) / MB),
    activation_ratio: round(act(plain) / act(ckpt)),
    target: 3,
    met: act(plain) / act(ckpt) >= 3,
    step_s: round(second["no-checkpointing"].s),
    step_checkpointed_s: round(second.checkpointing.s),
    time_ratio: round(second.checkpointing.s / second["no-checkpointing"].s),
    loss_step1: Number(first.checkpointing.row.loss),
    loss_step1_diff: diff(first, "loss"),
    grad_norm_step1: Number(first.checkpointing.row.grad_norm),
    grad_norm_step1_diff: diff(first, "grad_norm"),
    loss_step2_diff: diff(second, "loss"),
    grad_norm_step2_diff: diff(second, "grad_norm"),
    adapter_max_abs_diff_after_2_steps: paramDiff,
    identical_updates: diff(first, "loss") <= 1e-6 && diff(first, "grad_norm") <= 1e-6 && diff(second, "loss") <= 1e-6,
    load_1m: machineLoad().load_1m,
    cores: availableParallelism(),
    adapter: backend.description,
  };
  dispose(plain);
  dispose(ckpt);
  out(row);
}

if (!only || only === "step") await stepBench();
if (!only || only === "gradient-checkpointing") await checkpointingBench();
await T.releaseWebGPU();
