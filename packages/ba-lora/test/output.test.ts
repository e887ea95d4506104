// The output rules every command shares (src/cli/output.ts): special files refused before any work,
// symbolic links followed to a regular file or new path, --overwrite, atomic writes, stale temporaries.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, lstatSync, readFileSync, statSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registeredTemps } from "../src/cli/cleanup.js";
import { planOutput, planOutputs, sweepStaleTemps, tempPath, writeDirOutput, writeFileOutput, writeTextOutput } from "../src/cli/output.js";
import { modelFixture, run } from "./helpers.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "balora-output-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const file = (path: string, overwrite = false) =>
  planOutput({ flag: "--out", path, kind: "file", example: "logits.safetensors" }, { overwrite });
const folder = (path: string, overwrite = false) => planOutput({ flag: "--out", path, kind: "directory" }, { overwrite });
const fifo = (path: string) => execFileSync("mkfifo", [path]);
/** A pid that certainly belonged to a process that has exited. */
const deadPid = () => spawnSync(process.execPath, ["-e", ""]).pid!;

describe("planOutputs: every output checked before any work", () => {
  it("refuses character devices, FIFOs and links to them, and leaves them as they were", async () => {
    await expect(file("/dev/null")).rejects.toThrow("--out /dev/null is a character device; balora writes outputs only to regular files");
    await expect(folder("/dev/null")).rejects.toThrow(/is a character device/);
    const pipe = join(dir, "pipe");
    fifo(pipe);
    await expect(file(pipe, true)).rejects.toThrow(/--out .*pipe is a named pipe \(FIFO\); .*never replaces a special file/);
    const link = join(dir, "to-null");
    await symlink("/dev/null", link);
    await expect(file(link, true)).rejects.toThrow(/to-null is a character device \(a symbolic link to \/dev\/null\)/);
    expect(statSync("/dev/null").isCharacterDevice()).toBe(true);
    expect(lstatSync(pipe).isFIFO()).toBe(true);
    expect(await readlink(link)).toBe("/dev/null");
  });

  it("a symbolic link is followed: to a new path (written there) or a regular file (--overwrite), never replaced", async () => {
    const dangling = join(dir, "dangling");
    await symlink("made-by-link.txt", dangling);
    const p = await file(dangling);
    expect(p).toMatchObject({ target: join(dir, "made-by-link.txt"), exists: false });
    await writeTextOutput(p, "one");
    expect(lstatSync(dangling).isSymbolicLink()).toBe(true);
    expect(await readFile(join(dir, "made-by-link.txt"), "utf8")).toBe("one");
    await expect(file(dangling)).rejects.toThrow(/dangling already exists \(a symbolic link to .*made-by-link\.txt\); .*--overwrite/);
    await writeTextOutput(await file(dangling, true), "two");
    expect(lstatSync(dangling).isSymbolicLink()).toBe(true);
    expect(await readFile(join(dir, "made-by-link.txt"), "utf8")).toBe("two");
  });

  it("one rule for files and directories: an existing output needs --overwrite; kinds must match", async () => {
    const f = join(dir, "exists.txt");
    await writeFile(f, "x");
    await expect(file(f)).rejects.toThrow(`--out ${f} already exists; choose a new path, or pass --overwrite to replace it`);
    expect((await file(f, true)).exists).toBe(true);
    await expect(folder(f, true)).rejects.toThrow(/is a file; this command writes a directory there/);
    const d = join(dir, "exists-dir");
    await mkdir(d);
    await expect(folder(d)).rejects.toThrow(`--out ${d} already exists; choose a new path, or pass --overwrite to replace it`);
    expect((await folder(d, true)).exists).toBe(true); // empty
    await expect(file(d, true)).rejects.toThrow(`--out ${d} is a directory; give a file path, e.g. ${join(d, "logits.safetensors")}`);
    // --overwrite replaces only what looks like an output, never e.g. a home directory
    await writeFile(join(d, "notes.txt"), "mine");
    await expect(folder(d, true)).rejects.toThrow(/is a directory that balora did not write \(no config\.json, adapter_config\.json/);
    await writeFile(join(d, "adapter_config.json"), "{}");
    expect((await folder(d, true)).exists).toBe(true);
  });

  it("a missing or unwritable parent names the user's path and the directory", async () => {
    const p = join(dir, "no", "such", "out.safetensors");
    await expect(file(p)).rejects.toThrow(
      `--out ${p}: the directory ${join(dir, "no", "such")} does not exist; create it first (mkdir -p ${join(dir, "no", "such")})`,
    );
    await writeFile(join(dir, "plain"), "");
    await expect(file(join(dir, "plain", "x"))).rejects.toThrow(/plain is not a directory/);
    expect(existsSync(join(dir, "no"))).toBe(false);
  });

  it("an output may not replace an input, and two outputs may not share a path", async () => {
    const model = join(dir, "model");
    await mkdir(model);
    await writeFile(join(model, "config.json"), "{}");
    await expect(
      planOutputs([{ flag: "--out", path: model, kind: "directory" }], { overwrite: true, inputs: [{ flag: "--model", path: model }] }),
    ).rejects.toThrow(`--out ${model} would replace --model ${model}`);
    await expect(
      planOutputs(
        [
          { flag: "--out", path: join(dir, "same"), kind: "file" },
          { flag: "--report", path: join(dir, "same"), kind: "file" },
        ],
        {},
      ),
    ).rejects.toThrow(/--report .*same and --out .*same are the same path/);
  });
});

describe("writing outputs", () => {
  it("a file appears complete or not at all; a failed write leaves nothing, not even a temporary", async () => {
    const target = join(dir, "atomic.bin");
    const o = await file(target);
    await expect(
      writeFileOutput(o, async (f) => {
        await writeFile(f, "partial");
        expect(existsSync(target)).toBe(false);
        throw new Error("disk on fire");
      }),
    ).rejects.toThrow("disk on fire");
    expect(existsSync(target)).toBe(false);
    expect((await readdir(dir)).filter((n) => n.startsWith(".atomic"))).toEqual([]);
    expect(registeredTemps()).toEqual([]);
    await writeFileOutput(o, (f) => writeFile(f, "whole"));
    expect(readFileSync(target, "utf8")).toBe("whole");
  });

  it("a file that appears meanwhile is not replaced without --overwrite", async () => {
    const target = join(dir, "race.txt");
    const o = await file(target);
    await expect(
      writeFileOutput(o, async (f) => {
        await writeFile(f, "ours");
        await writeFile(target, "theirs");
      }),
    ).rejects.toThrow(/appeared while balora was working; nothing was replaced/);
    expect(readFileSync(target, "utf8")).toBe("theirs");
  });

  it("--overwrite swaps a directory in one rename; a failed build keeps the old one", async () => {
    const target = join(dir, "swap");
    await writeDirOutput(await folder(target), (d) => writeFile(join(d, "config.json"), "old"));
    await expect(
      writeDirOutput(await folder(target, true), async (d) => {
        await writeFile(join(d, "config.json"), "new");
        throw new Error("interrupted");
      }),
    ).rejects.toThrow("interrupted");
    expect(readFileSync(join(target, "config.json"), "utf8")).toBe("old");
    await writeDirOutput(await folder(target, true), (d) => writeFile(join(d, "config.json"), "new"));
    expect(readFileSync(join(target, "config.json"), "utf8")).toBe("new");
    expect((await readdir(dir)).filter((n) => n.startsWith(".swap"))).toEqual([]);
  });

  it("stale temporaries of dead runs beside an output are removed, an orphaned old output restored, live ones kept", async () => {
    const target = join(dir, "stale");
    const dead = deadPid();
    await mkdir(tempPath(target, "tmp", dead));
    await writeFile(join(tempPath(target, "tmp", dead), "model.safetensors"), "half");
    const old = tempPath(target, "old", dead);
    await mkdir(old);
    await writeFile(join(old, "config.json"), "previous");
    const live = tempPath(target, "tmp", process.ppid);
    await mkdir(live);
    const notes: string[] = [];
    await sweepStaleTemps(target, (l) => notes.push(l));
    expect(existsSync(tempPath(target, "tmp", dead))).toBe(false);
    expect(readFileSync(join(target, "config.json"), "utf8")).toBe("previous");
    expect(existsSync(live)).toBe(true);
    expect(notes.join("\n")).toMatch(new RegExp(`removed .*\\.stale\\.${dead}\\.tmp, left by an interrupted run \\(pid ${dead}\\)`));
    expect(notes.join("\n")).toMatch(/restored .*stale from \.stale\.\d+\.old/);
  });
});

describe("commands use the shared rules", () => {
  it("forward --out at a FIFO or a link to /dev/null: one line before any work, nothing replaced", async () => {
    const pipe = join(dir, "cmd-pipe");
    fifo(pipe);
    const link = join(dir, "cmd-null");
    await symlink("/dev/null", link);
    for (const out of [pipe, link]) {
      const input = join(modelFixture("llama-f32"), "golden.safetensors");
      const r = await run(["forward", "--model", modelFixture("llama-f32"), "--input", input, "--out", out]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/is a (named pipe \(FIFO\)|character device \(a symbolic link to \/dev\/null\)); balora writes outputs only/);
      expect(r.err.split("\n")).toHaveLength(1);
    }
    expect(lstatSync(pipe).isFIFO()).toBe(true);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  });

  it("forward refuses an existing --out like init and merge do, and replaces it with --overwrite", async () => {
    const g = join(modelFixture("llama-f32"), "golden.safetensors");
    const out = join(dir, "logits.safetensors");
    await writeFile(out, "keep me");
    const refused = await run(["forward", "--model", modelFixture("llama-f32"), "--input", g, "--out", out]);
    expect(refused.code).toBe(1);
    expect(refused.err).toBe(`balora forward: --out ${out} already exists; choose a new path, or pass --overwrite to replace it`);
    expect(readFileSync(out, "utf8")).toBe("keep me");
    const replaced = await run(["forward", "--model", modelFixture("llama-f32"), "--input", g, "--out", out, "--overwrite"]);
    expect(replaced.err).toBe("");
    expect(replaced.code).toBe(0);
    expect(readFileSync(out).subarray(8, 9).toString()).toBe("{");
  });
});
