// `balora loss` against independent computations (the perplexity loss, plain-JS entropy, computeLosses per
// batch, each teacher), an out-of-tree plugin package found from the user's directory, and its one-line errors.
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { injectAdapter, LORA_B, loadAdapter, loraLayers, saveAdapter } from "@balora/lora";
import { type CausalLM, loadModel, Tokenizer } from "@balora/models";
import { computeLosses } from "@balora/regularizers";
import * as T from "@balora/tensor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { maskedRows } from "../src/train/trainer.js";
import { resolvePlugin } from "../src/cli/plugins.js";
import { jsonErrorAt } from "../src/cli/run-config.js";
import { buildInstructionDataset, type CausalBatch, collateCausal, IGNORE_INDEX, padTokenIdOf } from "../src/data/instruction.js";
import { parseRecords } from "../src/data/records.js";
import { modelFixture, run, runBin } from "./helpers.js";

// Exact and quick: the float64 CPU backend, for the CLI in this process and the spawned one alike.
process.env.BALORA_BACKEND = "cpu";
const backend = T.cpuBackend();
T.setDefaultBackend(backend);

const DEMO = fileURLToPath(new URL("../assets/demo-model", import.meta.url));
const EVAL = fileURLToPath(new URL("../assets/demo-data/eval.jsonl", import.meta.url));
const PLUGIN = fileURLToPath(new URL("./fixtures/plugin", import.meta.url));
const PACKAGES = fileURLToPath(new URL("../..", import.meta.url));
// Four examples in two batches of two (the default --batch-size is 4): each batch has more valid rows than k = 10.
const FIELDS = ["--fields", "question,answer", "--batch-size", "2"];

let dir: string;
let data: string;
let adapterA: string;
let adapterB: string;
let trained: string;
let narrow: string;
let foreign: string;
let batchesOf: (size: number) => CausalBatch[];
const models = new Map<string, CausalLM>();

/** The demo model with an adapter (its B random, so it changes the logits), saved in peft's format. */
async function makeAdapter(modelDir: string, out: string, seed: number, r: number): Promise<string> {
  const m = await loadModel(modelDir, { backend });
  injectAdapter(m, { r, lora_alpha: 2 * r, target_modules: ["q_proj", "v_proj"] }, { seed });
  const rng = new T.Rng(seed);
  for (const [, l] of loraLayers(m)) {
    const b = l.adapters.get("default")!.params[LORA_B];
    T.copyInto(
      b,
      T.tensor(
        Float32Array.from({ length: b.size }, () => 0.5 * rng.normal()),
        b.shape,
        { backend },
      ),
    );
  }
  await saveAdapter(m, out);
  return out;
}

async function modelWith(adapter: string | null): Promise<CausalLM> {
  const key = adapter ?? "";
  if (!models.has(key)) {
    const m = (await loadModel(DEMO, { backend })) as CausalLM;
    if (adapter) await loadAdapter(m, adapter);
    m.eval();
    models.set(key, m);
  }
  return models.get(key)!;
}

/** Materialised logits [B, T, V] of one batch, computed once per model and batch. */
const logitsCache = new Map<string, T.Tensor>();
const logitsOf = async (adapter: string | null, size: number, index: number): Promise<T.Tensor> => {
  const key = `${adapter}|${size}|${index}`;
  if (!logitsCache.has(key)) {
    const m = await modelWith(adapter);
    const b = batchesOf(size)[index];
    const shape = [b.batchSize, b.seqLength];
    const ids = T.tensor(b.inputIds, shape, { backend, dtype: "i32" });
    logitsCache.set(key, T.keep(T.noGrad(() => m.forward(ids, { attentionMask: T.tensor(b.attentionMask, shape, { backend }) }))));
  }
  return logitsCache.get(key)!;
};

type Term = "consistency" | "diversity" | "svd";

/**
 * The `terms` per batch of `batchSize` with computeLosses (each batch's own means, materialised logits),
 * combined by hand: the task loss and token terms weighted by their rows, svd averaged over the batches.
 */
const directCache = new Map<string, Promise<Record<string, number>>>();
const direct = (student: string | null, teacher: string | null, batchSize: number, terms: Term[]): Promise<Record<string, number>> => {
  const key = JSON.stringify([student, teacher, batchSize, terms]);
  if (!directCache.has(key)) directCache.set(key, directUncached(student, teacher, batchSize, terms));
  return directCache.get(key)!;
};

async function directUncached(student: string | null, teacher: string | null, batchSize: number, terms: Term[]) {
  const sums: Record<string, number> = { task: 0, consistency: 0, diversity: 0, svd: 0 };
  const batches = batchesOf(batchSize);
  const config = { preset: "iclr2026" as const, lambda1: 0, lambda2: 0, lambda3: 0 };
  if (terms.includes("consistency")) config.lambda1 = 0.025;
  if (terms.includes("diversity")) config.lambda2 = 0.005;
  if (terms.includes("svd")) config.lambda3 = 0.005;
  let rows = 0;
  for (const [i, b] of batches.entries()) {
    const labels = T.tensor(b.labels, [b.batchSize, b.seqLength], { backend, dtype: "i32" });
    const logits = await logitsOf(student, batchSize, i);
    const r = computeLosses(config, {
      student: logits,
      teacher: terms.includes("consistency") ? await logitsOf(teacher, batchSize, i) : null,
      labels,
      step: 0,
      totalSteps: 1,
    });
    const n = b.supervisedTokens;
    rows += n;
    sums.task += (await r.task.item()) * n;
    for (const t of terms) sums[t] += ((await r.terms[t].item()) * (t === "svd" ? 1 : n)) / (t === "svd" ? batches.length : 1);
  }
  return { task: sums.task / rows, consistency: sums.consistency / rows, diversity: sums.diversity / rows, svd: sums.svd, rows };
}

/** Plain JS over materialised logits of the valid rows (shifted mask): f(row) averaged. */
async function rowMean(adapter: string | null, f: (row: Float64Array) => number): Promise<number> {
  let total = 0;
  let n = 0;
  for (const [index, b] of batchesOf(4).entries()) {
    const z = Float64Array.from(await (await logitsOf(adapter, 4, index)).data());
    const V = z.length / (b.batchSize * b.seqLength);
    for (let i = 0; i < b.batchSize; i++)
      for (let t = 0; t + 1 < b.seqLength; t++) {
        if (b.labels[i * b.seqLength + t + 1] === IGNORE_INDEX) continue;
        total += f(z.subarray((i * b.seqLength + t) * V, (i * b.seqLength + t + 1) * V));
        n++;
      }
  }
  return total / n;
}

/** −(entropy of the top-20 logits renormalised): iclr2026's diversity of one row. */
const topKEntropy = (row: Float64Array): number => {
  const top = [...row].sort((x, y) => y - x).slice(0, 20);
  const m = top[0];
  const e = top.map((x) => Math.exp(x - m));
  const s = e.reduce((a, x) => a + x, 0);
  return e.reduce((a, x) => a + (x / s) * Math.log(x / s), 0);
};

const json = async (argv: string[]) => {
  const r = await run(["loss", "--model", DEMO, "--data", data, ...FIELDS, "--json", "--quiet", ...argv]);
  expect(r.err, argv.join(" ")).toBe("");
  expect(r.code).toBe(0);
  expect(r.out.trim().split("\n")).toHaveLength(1);
  return JSON.parse(r.out);
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "balora-loss-"));
  const text = (await readFile(EVAL, "utf8")).split("\n").slice(0, 4).join("\n");
  data = join(dir, "data.jsonl");
  await writeFile(data, text);
  const tok = await Tokenizer.fromDir(DEMO);
  const ds = buildInstructionDataset(parseRecords(text, data), tok, { fields: ["question", "answer"] });
  batchesOf = (size) => {
    const out: CausalBatch[] = [];
    for (let i = 0; i < ds.examples.length; i += size) out.push(collateCausal(ds.examples.slice(i, i + size), padTokenIdOf(tok)));
    return out;
  };
  adapterA = await makeAdapter(DEMO, join(dir, "a"), 1, 4);
  adapterB = await makeAdapter(DEMO, join(dir, "b"), 2, 4);
  narrow = await makeAdapter(DEMO, join(dir, "narrow"), 3, 2);
  foreign = await makeAdapter(modelFixture("llama-f32"), join(dir, "foreign"), 4, 4);
  // What `balora train` leaves: the trained adapter, and the state it started from in initial_adapter/.
  trained = join(dir, "trained");
  await cp(adapterA, trained, { recursive: true });
  await cp(adapterB, join(trained, "initial_adapter"), { recursive: true });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("balora loss", () => {
  it("--preset lora: the task loss of `balora eval perplexity`, every term null; `balora eval loss` is the same command", async () => {
    const out = await json(["--preset", "lora"]);
    const ppl = await run(["eval", "perplexity", "--model", DEMO, "--data", data, ...FIELDS, "--json", "--quiet"]);
    const ref = JSON.parse(ppl.out);
    expect(out.task_loss).toBeCloseTo(ref.loss, 10);
    expect(out).toEqual({
      task_loss: out.task_loss,
      consistency: null,
      diversity: null,
      svd: null,
      tokens: ref.tokens,
      examples: 4,
      teacher: "base",
    });
    const alias = await run(["eval", "loss", "--model", DEMO, "--data", data, ...FIELDS, "--json", "--quiet", "--preset", "lora"]);
    expect(JSON.parse(alias.out)).toEqual(out);
    const text = await run(["loss", "--model", DEMO, "--data", data, ...FIELDS, "--quiet", "--preset", "lora"]);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/4 examples, \d+ target tokens, 2 batch\(es\) of 2; preset lora, mask shifted; teacher: the base model/);
    expect(text.out).toMatch(/^consistency +null +0 +0 +off$/m);
    expect((await run(["loss", "--help"])).out).toMatch(/--teacher-adapter DIR +the teacher is the base \+ this peft adapter/);
  });

  it("iclr2026 without an adapter: consistency 0 (teacher = student), diversity and svd as computed directly", async () => {
    const out = await json([]);
    const ref = await direct(null, null, 2, ["diversity", "svd"]);
    expect(out.tokens).toBe(ref.rows);
    expect(out.task_loss).toBeCloseTo(ref.task, 10);
    expect(out.consistency).toBeCloseTo(0, 12);
    expect(out.diversity).toBeCloseTo(ref.diversity, 10);
    expect(out.diversity).toBeCloseTo(await rowMean(null, topKEntropy), 10); // plain JS, no regularizer code
    expect(out.svd).toBeCloseTo(ref.svd, 10); // the mean of the two batches' values
    expect(out.svd).toBeLessThan(0);
    // One batch of the whole file: the token terms are the same, the svd term is the whole file's.
    const whole = await json(["--batch-size", "4"]);
    expect(whole.diversity).toBeCloseTo(out.diversity, 10);
    expect(whole.svd).toBeCloseTo((await direct(null, null, 4, ["svd"])).svd, 10);
    expect(whole.svd).not.toBeCloseTo(out.svd, 4);
    const text = await run(["loss", "--model", DEMO, "--data", data, ...FIELDS, "--quiet"]);
    expect(text.out).toMatch(/^diversity +-\d\.\d{6} +0 +0\.005 +two_phase$/m);
    expect(text.out).toMatch(/^consistency +-?0\.000000 +0\.025 +0\.025 +cosine$/m);
  });

  it("the teacher: the base with the adapter off, initial_adapter/, --teacher-adapter with and without --adapter", async () => {
    const only = ["--lambda2", "0", "--lambda3", "0"]; // consistency alone (the other terms are checked above)
    const base = await json(["--adapter", adapterA, ...only]);
    const refBase = await direct(adapterA, null, 2, ["consistency"]);
    expect(base.teacher).toBe("base");
    expect(base.task_loss).toBeCloseTo(refBase.task, 10);
    expect(base.consistency).toBeGreaterThan(1e-4);
    expect(base.consistency).toBeCloseTo(refBase.consistency, 10);
    const initial = await json(["--adapter", trained, ...only]);
    const refAB = await direct(adapterA, adapterB, 2, ["consistency"]);
    expect(initial.teacher).toBe("initial_adapter");
    expect(initial.consistency).toBeCloseTo(refAB.consistency, 10);
    expect(initial.consistency).not.toBeCloseTo(base.consistency, 4);
    const given = await json(["--adapter", adapterA, "--teacher-adapter", adapterB, ...only]);
    expect(given.teacher).toBe("teacher-adapter");
    expect(given.consistency).toBeCloseTo(refAB.consistency, 10);
    const self = await json(["--adapter", trained, "--teacher-adapter", adapterA, ...only]);
    expect(self.consistency).toBeCloseTo(0, 12);
    const alone = await json(["--teacher-adapter", adapterA, ...only]);
    const refAlone = await direct(null, adapterA, 2, ["consistency"]);
    expect(alone.teacher).toBe("teacher-adapter");
    expect(alone.task_loss).toBeCloseTo(refAlone.task, 10); // the student is the base
    expect(alone.consistency).toBeCloseTo(refAlone.consistency, 10);
  });

  it("config settings under the flags: preset, λ, regularizers.terms; other mask modes count their rows", async () => {
    const cfg = join(dir, "lambda2.json");
    await writeFile(cfg, JSON.stringify({ preset: "lora", lambda2: 0.01, top_k_entropy: 0 }));
    const fromFile = await json(["--config", cfg]);
    expect(fromFile.consistency).toBeNull();
    expect(fromFile.svd).toBeNull();
    expect(fromFile.diversity).toBeCloseTo(
      await rowMean(null, (row) => {
        const m = Math.max(...row);
        const s = row.reduce((a, x) => a + Math.exp(x - m), 0);
        return row.reduce((a, x) => a + (Math.exp(x - m) / s) * (x - m - Math.log(s)), 0);
      }),
      10,
    );
    expect((await json(["--config", cfg, "--lambda2", "0"])).diversity).toBeNull();
    const terms = join(dir, "terms.json");
    await writeFile(terms, JSON.stringify({ regularizers: { preset: "lora", terms: { svd: { lambda: 1 } } } }));
    expect((await json(["--config", terms])).svd).toBeCloseTo((await direct(null, null, 2, ["diversity", "svd"])).svd, 10);
    const b = batchesOf(2)[0];
    expect(maskedRows(b.labels, b.batchSize, b.seqLength, "shifted")).toBe(b.supervisedTokens);
    expect(maskedRows(b.labels, b.batchSize, b.seqLength, "unshifted")).toBe(b.labels.filter((l) => l !== IGNORE_INDEX).length);
    expect(maskedRows(b.labels, b.batchSize, b.seqLength, "none")).toBe(b.batchSize * b.seqLength);
    const none = await json(["--mask-mode", "none", "--preset", "v5"]);
    expect(Object.keys(none)).toEqual(["task_loss", "consistency", "diversity", "svd", "tokens", "examples", "teacher"]);
    expect(none.task_loss).toBeCloseTo(fromFile.task_loss, 10); // the task loss never depends on the mask mode
  });

  it("an out-of-tree plugin package, resolved from the user's directory, adds its term (--plugin and the config's plugins)", async () => {
    // A project with the plugin installed in its node_modules, next to the @balora packages it imports.
    const project = join(dir, "project");
    const modules = join(project, "node_modules");
    await mkdir(join(modules, "@balora"), { recursive: true });
    await cp(PLUGIN, join(modules, "balora-plugin-l2-logits"), { recursive: true });
    await cp(PLUGIN, join(project, "local-plugin"), { recursive: true });
    for (const p of ["regularizers", "tensor"]) await symlink(join(PACKAGES, p), join(modules, "@balora", p), "dir");
    const cfg = join(project, "cfg.json");
    await writeFile(cfg, JSON.stringify({ preset: "lora", regularizers: { terms: { l2_logits: { lambda: 0.1 } } } }));
    const argv = ["loss", "--model", DEMO, "--data", data, ...FIELDS, "--config", "cfg.json", "--json", "--quiet"];
    const ref = await rowMean(null, (row) => row.reduce((a, x) => a + x * x, 0) / row.length);
    const byName = await runBin([...argv, "--plugin", "balora-plugin-l2-logits"], { cwd: project });
    expect(byName.err).toBe("");
    const out = JSON.parse(byName.out);
    expect(Object.keys(out)).toEqual(["task_loss", "consistency", "diversity", "svd", "l2_logits", "tokens", "examples", "teacher"]);
    expect(out.l2_logits).toBeCloseTo(ref, 8);
    // A path in the config's plugins, relative to the working directory.
    await writeFile(
      cfg,
      JSON.stringify({ preset: "lora", plugins: ["./local-plugin"], regularizers: { terms: { l2_logits: { lambda: 0.1 } } } }),
    );
    const byPath = await runBin(argv, { cwd: project });
    expect(byPath.err).toBe("");
    expect(JSON.parse(byPath.out).l2_logits).toBeCloseTo(ref, 8);
  });

  it("errors are one line: unknown plugin, a plugin that registers nothing, bad config, unknown key, data, teacher shapes", async () => {
    const empty = join(dir, "empty.mjs");
    await writeFile(empty, "export const nothing = 1;\n");
    const bad = join(dir, "bad.json");
    await writeFile(bad, '{\n  "preset": "lora",\n  "lambda1": \n}\n');
    const unknown = join(dir, "unknown.json");
    await writeFile(unknown, JSON.stringify({ preset: "lora", lr: 1e-4 }));
    const notEnabled = join(dir, "not-registered.json");
    await writeFile(notEnabled, JSON.stringify({ regularizers: { terms: { no_such_term: { lambda: 1 } } } }));
    const cases: [string[], RegExp][] = [
      [
        ["--plugin", "balora-no-such-plugin"],
        /^balora loss: plugin balora-no-such-plugin: not installed .*; npm i balora-no-such-plugin next to/,
      ],
      [
        ["--plugin", empty],
        /^balora loss: plugin .*empty\.mjs: .* registered no regularizer on import; a plugin must call registerRegularizer/,
      ],
      [["--plugin", join(dir, "nope.js")], /^balora loss: plugin .*nope\.js: .* not found/],
      [["--config", bad], /^balora loss: --config .*bad\.json:4:1: invalid JSON \(.*\); the file must hold one JSON object$/],
      [["--config", unknown], /^balora loss: --config .*unknown\.json: unknown key "lr" \(keys: preset, mask_mode, .*\)$/],
      [["--config", notEnabled], /^balora loss: --config .*: regularizers: regularizer "no_such_term" is not registered .*pass --plugin/],
      [["--config", join(dir, "missing.json")], /^balora loss: --config .*missing\.json: not found$/],
      [["--data", join(dir, "missing.jsonl")], /^balora loss: --data .*missing\.jsonl: not found$/],
      [
        ["--adapter", adapterA, "--teacher-adapter", narrow],
        /^balora loss: --teacher-adapter .*narrow: does not fit --adapter .*: .*has shape \[2,64\]/,
      ],
      [["--teacher-adapter", foreign], /^balora loss: --teacher-adapter .*foreign: does not fit --model .*: .*has shape/],
    ];
    for (const [extra, message] of cases) {
      const argv = ["loss", "--model", DEMO, "--data", data, ...FIELDS, "--json", "--quiet", ...extra];
      const r = await run(argv);
      expect(r.code, extra.join(" ")).toBe(1);
      expect(r.out, extra.join(" ")).toBe("");
      expect(r.err.split("\n"), extra.join(" ")).toHaveLength(1);
      expect(r.err, extra.join(" ")).toMatch(message);
    }
    const usage = await run(["loss", "--model", DEMO, ...FIELDS]);
    expect(usage.code).toBe(2);
    expect(usage.err.split("\n")[0]).toBe("balora loss: missing required option --data");
    const flag = await run(["loss", "--model", DEMO, "--data", data, "--top-k-entropy", "100"]);
    expect(flag.code).toBe(2);
    expect(flag.err.split("\n")[0]).toMatch(
      /^balora loss: --top-k-entropy must be an integer from 0 \(the full vocabulary\) to 64, got 100$/,
    );
  });
});

describe("plugin resolution and config syntax", () => {
  it('a package\'s entry: exports (string, conditions, nested, "."), module, main, index.js; walking up from cwd', async () => {
    const root = join(dir, "resolve");
    const deep = join(root, "src", "deeper");
    await mkdir(deep, { recursive: true });
    const pkg = async (name: string, manifest: Record<string, unknown> | null, files: string[]) => {
      const p = join(root, "node_modules", name);
      await mkdir(p, { recursive: true });
      if (manifest) await writeFile(join(p, "package.json"), JSON.stringify({ name, ...manifest }));
      for (const f of files) {
        await mkdir(join(p, f, ".."), { recursive: true });
        await writeFile(join(p, f), "export {};\n");
      }
      return p;
    };
    const str = await pkg("p-string", { exports: "./lib/s.js" }, ["lib/s.js"]);
    const cond = await pkg("p-cond", { exports: { types: "./t.d.ts", require: "./c.cjs", import: "./i.mjs" } }, ["i.mjs"]);
    const nested = await pkg("@scope/p-nested", { exports: { ".": { import: { types: "./x.d.ts", default: "./n.js" } } } }, ["n.js"]);
    const main = await pkg("p-main", { main: "m.js" }, ["m.js"]);
    const bare = await pkg("p-bare", null, ["index.js"]);
    const broken = await pkg("p-broken", { exports: { ".": { import: "./gone.js" } } }, []);
    const cjsOnly = await pkg("p-cjs", { exports: { ".": { require: "./c.cjs" } } }, ["c.cjs"]);
    expect(await resolvePlugin("p-string", deep)).toBe(join(str, "lib/s.js"));
    expect(await resolvePlugin("p-cond", deep)).toBe(join(cond, "i.mjs"));
    expect(await resolvePlugin("@scope/p-nested", deep)).toBe(join(nested, "n.js"));
    expect(await resolvePlugin("p-main", deep)).toBe(join(main, "m.js"));
    expect(await resolvePlugin("p-bare", deep)).toBe(join(bare, "index.js"));
    expect(await resolvePlugin("./node_modules/p-main", root)).toBe(join(main, "m.js"));
    expect(await resolvePlugin("../../node_modules/p-string/lib/s.js", deep)).toBe(join(str, "lib/s.js"));
    await expect(resolvePlugin("p-broken", deep)).rejects.toThrow(/points at \.\/gone\.js, which does not exist/);
    await expect(resolvePlugin("p-cjs", deep)).rejects.toThrow(/no "exports" entry "\." with an "import" or "default" condition/);
    expect(broken).toBeTruthy();
    expect(cjsOnly).toBeTruthy();
    await expect(resolvePlugin("Not A Name", deep)).rejects.toThrow(/not a package name or a path/);
    await expect(resolvePlugin("p-string", tmpdir())).rejects.toThrow(/not installed .*npm i p-string next to your project/);
  });

  it("where a config file's JSON goes wrong", () => {
    expect(jsonErrorAt('{"a": 1}')).toBe(-1);
    expect(jsonErrorAt('{"a": [1, 2.5e3, true, null, "x\\n"], "b": {}}')).toBe(-1);
    expect(jsonErrorAt('{"a": }')).toBe(6);
    expect(jsonErrorAt('{"a": 1,}')).toBe(8);
    expect(jsonErrorAt('{"a": 1} x')).toBe(9);
    expect(jsonErrorAt('{"a": 1')).toBe(7);
    expect(jsonErrorAt("{a: 1}")).toBe(1);
    expect(jsonErrorAt('{"a": 01}')).toBe(7);
  });
});
