// Ctrl-C, SIGTERM and kill -9 on the real `balora` bin: exit 130 / 143 / 137 (so `balora … && next`
// stops), no output and no temporary left behind, and leftovers of dead runs swept at the next start.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, modelFixture, runBin } from "./helpers.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "balora-signals-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const HOLD = { BALORA_TEST_HOLD: "commit" };
const peftFixture = (name: string) => fileURLToPath(new URL(`./fixtures/peft/${name}`, import.meta.url));
/** The bin that started the CLI process `pid` (its parent, from /proc). */
const binOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")[1]);
const init = (out: string, method = "pissa", ...extra: string[]) => [
  "init",
  "--model",
  modelFixture("llama-f32"),
  "--init",
  method,
  "--r",
  "2",
  "--alpha",
  "4",
  "--out",
  out,
  ...extra,
];
const leftovers = async (name: string) => (await readdir(dir)).filter((n) => n.startsWith(`.${name}.`));
/** Sends `sig` to the process once a stderr line matches `re`. */
const signalOn = (re: RegExp, sig: NodeJS.Signals, target: "bin" | "cli" = "bin") => {
  let sent = false;
  return (line: string, binPid: number) => {
    if (sent || !re.test(line)) return;
    sent = true;
    const pid = target === "bin" ? binPid : Number(/pid (\d+)/.exec(line)![1]);
    process.kill(pid, sig);
  };
};

describe("signals", () => {
  for (const [sig, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    it(`${sig} while the output is complete under its temporary name: exit ${code}, nothing left`, async () => {
      const out = join(dir, `held-${sig}`);
      const r = await runBin(init(out), { env: HOLD, onStderrLine: signalOn(/holding before the rename/, sig) });
      expect(r.code, r.err).toBe(code);
      expect(r.err).toContain(`balora: interrupted by ${sig}; temporary files removed`);
      expect(existsSync(out)).toBe(false);
      expect(await leftovers(`held-${sig}`)).toEqual([]);
    });
  }

  it("forward: SIGTERM with the logits written under the temporary name leaves no partial file", async () => {
    const out = join(dir, "logits.safetensors");
    const input = join(modelFixture("llama-f32"), "golden.safetensors");
    const r = await runBin(["forward", "--model", modelFixture("llama-f32"), "--input", input, "--out", out], {
      env: HOLD,
      onStderrLine: signalOn(/holding before the rename/, "SIGTERM"),
    });
    expect(r.code, r.err).toBe(143);
    expect(existsSync(out)).toBe(false);
    expect(await leftovers("logits.safetensors")).toEqual([]);
  });

  it("Ctrl-C in the middle of PiSSA (each layer made 200 ms slow): exit 130, no output, no temporary", async () => {
    const out = join(dir, "mid-pissa");
    const r = await runBin(init(out), { env: { BALORA_TEST_HOLD: "layers" }, onStderrLine: signalOn(/^pissa 1\/14 /, "SIGINT") });
    expect(r.err).toMatch(/^pissa 1\/14 model\.layers\.0\.self_attn\.q_proj$/m);
    expect(r.code, r.err).toBe(130);
    // handled once the synchronous PiSSA loop yields: before the output is renamed into place
    expect(r.err).toMatch(/^pissa 14\/14 .*\n(.*\n)*balora: interrupted by SIGINT; temporary files removed$/m);
    expect(existsSync(out)).toBe(false);
    expect(await leftovers("mid-pissa")).toEqual([]);
  });

  it("`balora merge … && next`: an interrupted merge stops the chain", async () => {
    const out = join(dir, "merged");
    const merge = ["merge", "--model", modelFixture("llama-f32"), "--adapter", peftFixture("llama-lora"), "--out", out];
    const quoted = [process.execPath, BIN, ...merge].map((a) => `'${a}'`).join(" ");
    const chain = spawn("sh", ["-c", `${quoted} && echo next; echo "status $?"`], { env: { ...process.env, ...HOLD } });
    let stdout = "";
    chain.stdout.on("data", (d) => (stdout += d));
    chain.stderr.on("data", (d) => {
      const m = /holding before the rename .*pid (\d+)/.exec(String(d));
      if (m) process.kill(binOf(Number(m[1])), "SIGINT");
    });
    await new Promise((done) => chain.on("close", done));
    expect(stdout).not.toContain("next");
    expect(stdout).toContain("status 130");
    expect(existsSync(out)).toBe(false);
    expect(await leftovers("merged")).toEqual([]);
  });

  it("kill -9 of the working process: the bin removes its temporaries and exits 137", async () => {
    const out = join(dir, "killed");
    const r = await runBin(init(out, "lora"), { env: HOLD, onStderrLine: signalOn(/holding before the rename/, "SIGKILL", "cli") });
    expect(r.code, r.err).toBe(137);
    expect(existsSync(out)).toBe(false);
    expect(await leftovers("killed")).toEqual([]);
  });

  it("a second Ctrl-C does not wait for a process busy in synchronous work: exit 130, temporaries removed", async () => {
    const out = join(dir, "twice");
    let seen = false;
    const r = await runBin(init(out, "lora"), {
      env: { BALORA_TEST_HOLD: "commit-busy" },
      onStderrLine: (line, pid) => {
        if (seen || !/holding before the rename/.test(line)) return;
        seen = true;
        process.kill(pid, "SIGINT");
        setTimeout(() => process.kill(pid, "SIGINT"), 500);
      },
    });
    expect(r.code, r.err).toBe(130);
    expect(existsSync(out)).toBe(false);
    expect(await leftovers("twice")).toEqual([]);
  });

  it("the next run removes what a run killed outright left beside its output", async () => {
    const out = join(dir, "swept");
    const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
    const stale = join(dir, `.swept.${dead}.tmp`);
    await mkdir(join(stale, "pissa_init"), { recursive: true });
    await writeFile(join(stale, "model.safetensors"), "a partial 400 MB residual model");
    const r = await runBin(init(out, "lora", "--quiet"));
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(new RegExp(`removed .*\\.swept\\.${dead}\\.tmp, left by an interrupted run \\(pid ${dead}\\)`));
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(join(out, "adapter_config.json"))).toBe(true);
  });
});
