// `balora train` as a user runs it: the outputs of a run, kill -9 at random moments (and inside a
// checkpoint write) then --resume giving the uninterrupted run's adapter and metrics, Ctrl-C, mistakes.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseSafetensors } from "@balora/safetensors";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, run, runBin } from "./helpers.js";

const asset = (p: string) => fileURLToPath(new URL(`../assets/${p}`, import.meta.url));
const MODEL = asset("demo-model");
let dir: string;
let data: string;
let reference: string;

const args = (out: string, ...extra: string[]) => [
  "train",
  "--model",
  MODEL,
  "--data",
  data,
  "--out",
  out,
  "--max-steps",
  "8",
  "--batch-size",
  "4",
  "--lr",
  "2e-3",
  "--r",
  "4",
  "--alpha",
  "8",
  "--target",
  "q_proj,v_proj,down_proj",
  "--lora-dropout",
  "0.1",
  "--save-steps",
  "2",
  ...extra,
];

const TIMING = new Set(["tokens_per_s", "elapsed_s"]);
const rowsOf = (out: string) =>
  readFileSync(join(out, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => Object.fromEntries(Object.entries(JSON.parse(l)).filter(([k]) => !TIMING.has(k))));

/** Every tensor of an adapter file as numbers, by name. */
async function tensorsOf(out: string): Promise<Record<string, number[]>> {
  const file = await parseSafetensors(readFileSync(join(out, "adapter_model.safetensors")));
  const entries: [string, number[]][] = [];
  for (const n of file.names) entries.push([n, Array.from((await file.readTensor(n)).data as Float32Array)]);
  return Object.fromEntries(entries);
}

async function expectSameRun(out: string): Promise<void> {
  const a = await tensorsOf(out);
  const b = await tensorsOf(reference);
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const k of Object.keys(a)) {
    const scale = Math.max(...b[k].map(Math.abs));
    a[k].forEach((v, i) => expect(Math.abs(v - b[k][i])).toBeLessThanOrEqual(1e-6 * scale));
  }
  const ra = rowsOf(out);
  const rb = rowsOf(reference);
  expect(ra.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  ra.forEach((row, i) => {
    for (const [k, v] of Object.entries(row))
      expect(Math.abs(Number(v) - Number(rb[i][k]))).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(Number(rb[i][k]))));
  });
}

/** The CLI process itself (no bin in front), so SIGKILL hits the process that writes. */
function spawnWorker(argv: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, ...argv], {
    env: { ...process.env, BALORA_CLI_CHILD: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; err: string }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, err })),
  );
  return { child, done, stderr: () => err };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "balora-train-"));
  data = join(dir, "train.jsonl");
  await writeFile(data, readFileSync(asset("demo-data/train.jsonl"), "utf8").split("\n").slice(0, 40).join("\n"));
  reference = join(dir, "reference");
  const r = await runBin(args(reference, "--quiet"), { timeoutMs: 120_000 });
  expect(r.err).toBe("");
  expect(r.code).toBe(0);
}, 150_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("balora train", () => {
  it("writes the adapter as peft does, its initial state, the PiSSA conversion, config, metrics, report and checkpoints", async () => {
    const names = await readdir(reference);
    for (const f of ["adapter_config.json", "adapter_model.safetensors", "training_config.json", "metrics.jsonl", "report.html"])
      expect(names).toContain(f);
    expect(names.filter((n) => n.startsWith("checkpoint-")).sort()).toEqual([
      "checkpoint-2",
      "checkpoint-4",
      "checkpoint-6",
      "checkpoint-8",
    ]);
    expect(names.filter((n) => n.startsWith("."))).toEqual([]); // no temporary left
    const config = JSON.parse(await readFile(join(reference, "adapter_config.json"), "utf8"));
    expect(config).toMatchObject({ peft_type: "LORA", r: 4, lora_alpha: 8, init_lora_weights: "pissa", use_dora: false });
    expect(config.target_modules).toEqual(["down_proj", "q_proj", "v_proj"]);
    const converted = JSON.parse(await readFile(join(reference, "converted", "adapter_config.json"), "utf8"));
    expect(converted).toMatchObject({ r: 8, lora_alpha: 16, init_lora_weights: true });
    expect(existsSync(join(reference, "initial_adapter", "adapter_model.safetensors"))).toBe(true);
    const settings = JSON.parse(await readFile(join(reference, "training_config.json"), "utf8"));
    expect(settings).toMatchObject({ lr: 0.002, scheduler: "cosine", warmup_ratio: 0.03, warmup_steps: 1, total_steps: 8, seed: 42 });
    expect(settings.regularizers_effective).toBeTruthy();
    const rows = rowsOf(reference);
    expect(rows).toHaveLength(8);
    for (const k of [
      "step",
      "epoch",
      "loss",
      "task_loss",
      "consistency",
      "diversity",
      "svd",
      "lambda1",
      "lambda2",
      "lambda3",
      "lr",
      "grad_norm",
      "tokens",
    ])
      expect(Object.keys(rows[3])).toContain(k);
    expect(rows[0].lr).toBe(0);
    // (consistency is 0 at step 0 without dropout: test/trainer.test.ts; here the student's adapter input has dropout 0.1)
    expect(Number(rows[0].consistency)).toBeGreaterThan(0);
    expect(await readFile(join(reference, "report.html"), "utf8")).toMatch(/<svg/);
    const ckpt = await readdir(join(reference, "checkpoint-4"));
    for (const f of [
      "adapter_model.safetensors",
      "optimizer.safetensors",
      "trainer_state.json",
      "metrics.jsonl",
      "checkpoint_complete.json",
    ])
      expect(ckpt).toContain(f);
    expect(
      readFileSync(join(reference, "checkpoint-4", "metrics.jsonl"), "utf8")
        .trim()
        .split("\n"),
    ).toHaveLength(4);
  });

  it("kill -9 at random moments and inside a checkpoint write, then --resume: the uninterrupted run's adapter and metrics", async () => {
    const out = join(dir, "killed");
    // Inside a checkpoint write: held just before the rename of checkpoint-2, then SIGKILL.
    const held = spawnWorker(args(out, "--quiet"), { BALORA_TEST_HOLD: "commit" });
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (!/holding before the rename/.test(held.stderr())) return;
        clearInterval(poll);
        held.child.kill("SIGKILL");
        resolve();
      }, 20);
    });
    expect((await held.done).signal).toBe("SIGKILL");
    expect((await readdir(out)).some((n) => /^\.checkpoint-2\.\d+\.tmp$/.test(n))).toBe(true); // the cut-short checkpoint
    // Then at random moments (seeded, so a failure replays), until a run completes.
    let seed = 12345;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    let runs = 0;
    for (;;) {
      runs++;
      const w = spawnWorker(["train", "--resume", out, "--quiet"]);
      const timer = runs < 4 ? setTimeout(() => w.child.kill("SIGKILL"), 1500 + random() * 3000) : null;
      const r = await w.done;
      if (timer) clearTimeout(timer);
      if (r.code === 0) break;
      expect(r.signal).toBe("SIGKILL");
      expect(runs).toBeLessThan(8);
    }
    await expectSameRun(out);
    expect((await readdir(out)).filter((n) => n.startsWith("."))).toEqual([]);
  }, 240_000);

  it("Ctrl-C finishes the step, writes a checkpoint, says how to resume and exits 130; resuming completes the run", async () => {
    const out = join(dir, "interrupted");
    const r = await runBin(args(out), {
      timeoutMs: 120_000,
      onStderrLine: (line, pid) => {
        if (/^balora: step 3\/8 /.test(line) || /^step 3\/8 /.test(line)) process.kill(pid, "SIGINT");
      },
    });
    expect(r.code).toBe(130);
    const message = r.err.trim().split("\n").pop()!;
    expect(message).toMatch(
      /^balora train: interrupted at step (\d) of 8; checkpoint written to .*checkpoint-\d; continue with: balora train --resume /,
    );
    const step = Number(/interrupted at step (\d)/.exec(message)![1]);
    expect(existsSync(join(out, `checkpoint-${step}`, "checkpoint_complete.json"))).toBe(true);
    expect(rowsOf(out)).toHaveLength(step);
    const again = await runBin(["train", "--resume", out, "--quiet"], { timeoutMs: 120_000 });
    expect(again.code).toBe(0);
    await expectSameRun(out);
  }, 240_000);

  it("mistakes are one line naming the flag, file or key", async () => {
    const cases: [string[], number, RegExp][] = [
      [["train", "--model", MODEL, "--out", join(dir, "x")], 2, /--data is required/],
      [args(join(dir, "x"), "--lr", "-1"), 2, /--lr: must be a number >= 0, got -1/],
      [args(join(dir, "x"), "--scheduler", "step"), 2, /--scheduler: must be one of constant, linear, cosine, got step/],
      [args(join(dir, "x"), "--adapter", reference, "--init", "lora"), 2, /--adapter starts from a saved adapter; --init creates one/],
      [args(reference), 1, /already exists/],
      [["train", "--resume", dir], 1, /no training_config.json in .*; is it a balora train --out folder\?/],
      [
        ["train", "--resume", reference, "--lr", "1"],
        2,
        /--resume continues a run with the settings in its training_config.json; drop --lr/,
      ],
    ];
    const bad = join(dir, "bad.jsonl");
    await writeFile(bad, '{"instruction": "a", "output": "b"}\n{"instruction": 3, "output": "c"}\n');
    cases.push([args(join(dir, "x"), "--data", bad), 1, /bad\.jsonl:2: .*instruction/]);
    cases.push([args(join(dir, "x"), "--data", join(dir, "missing.jsonl")), 1, /--data .*missing\.jsonl/]);
    const cfg = join(dir, "bad.json");
    await writeFile(cfg, JSON.stringify({ learning_rate: 1 }));
    cases.push([[...args(join(dir, "x")), "--config", cfg], 1, /unknown key "learning_rate"/]);
    for (const [argv, code, re] of cases) {
      const r = await runBin(argv, { timeoutMs: 60_000 });
      const first = r.err.trim().split("\n")[0];
      expect({ argv: argv.join(" "), code: r.code, first }).toEqual({ argv: argv.join(" "), code, first: expect.stringMatching(re) });
    }
    expect(existsSync(join(dir, "x"))).toBe(false);
  }, 120_000);

  it("--eval-data: eval rows every --eval-steps and at the end, equal to balora loss; resume keeps each once", async () => {
    const evalData = join(dir, "eval.jsonl");
    await writeFile(evalData, readFileSync(asset("demo-data/train.jsonl"), "utf8").split("\n").slice(40, 46).join("\n"));
    const out = join(dir, "with-eval");
    const argv = [...args(out, "--quiet"), "--max-steps", "4", "--eval-data", evalData, "--eval-steps", "3", "--lora-dropout", "0"];
    const r = await run(argv);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/final loss [0-9.]+, eval loss [0-9.]+\)/);
    const timing = new Set([...TIMING, "eval_runtime"]);
    const rows = () =>
      readFileSync(join(out, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => Object.fromEntries(Object.entries(JSON.parse(l)).filter(([k]) => !timing.has(k))) as Record<string, number>);
    const all = rows();
    expect(all.map((row) => `${row.step}${row.loss === undefined ? "e" : ""}`)).toEqual(["1", "2", "3", "3e", "4", "4e"]);
    expect(Object.keys(all[3]).sort()).toEqual(["epoch", "eval_examples", "eval_loss", "step"]);
    expect(all[5].eval_examples).toBe(6);
    expect(all[5].eval_loss).toBeLessThan(all[3].eval_loss); // training on the same task lowers the held-out loss
    // The same number another way: balora loss over the eval file with the final adapter (the file as one batch).
    const loss = await run(["loss", "--model", MODEL, "--adapter", out, "--data", evalData, "--preset", "lora", "--json"]);
    expect(loss.code).toBe(0);
    const taskLoss = JSON.parse(loss.out).task_loss as number;
    expect(Math.abs(all[5].eval_loss - taskLoss)).toBeLessThan(1e-4 * taskLoss);
    const settings = JSON.parse(readFileSync(join(out, "training_config.json"), "utf8"));
    expect(settings).toMatchObject({ task: "nlg", eval_data: evalData, eval_steps: 3, fields: ["instruction", "output"] });
    expect(readFileSync(join(out, "report.html"), "utf8")).toMatch(/4 steps, 2 evaluations/);
    // A run killed during step 4 (checkpoint-2 complete, later rows written) resumes to the same rows, none twice.
    const killed = join(dir, "with-eval-killed");
    await cp(out, killed, { recursive: true });
    await rm(join(killed, "checkpoint-4"), { recursive: true });
    for (const f of ["adapter_model.safetensors", "adapter_config.json", "report.html"]) await rm(join(killed, f));
    const again = await run(["train", "--resume", killed, "--quiet"]);
    expect(again.code).toBe(0);
    const resumed = readFileSync(join(killed, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => Object.fromEntries(Object.entries(JSON.parse(l)).filter(([k]) => !timing.has(k))));
    expect(resumed.map((row) => row.step)).toEqual(all.map((row) => row.step));
    resumed.forEach((row, i) => {
      for (const [k, v] of Object.entries(row))
        expect(Math.abs(Number(v) - Number(all[i][k])), `row ${i} ${k}`).toBeLessThanOrEqual(
          1e-6 * Math.max(1, Math.abs(Number(all[i][k]))),
        );
    });
  }, 180_000);

  it("--help lists the classification and evaluation settings with their defaults", async () => {
    const r = await run(["train", "--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/--eval-data FILE/);
    expect(r.out).toMatch(/--eval-steps N .*default: --save-steps/);
    expect(r.out).toMatch(/--fields A,B .*default: instruction,output \(a classifier: text,label\)/);
    expect(r.out).toMatch(/ForSequenceClassification/);
  });
});
