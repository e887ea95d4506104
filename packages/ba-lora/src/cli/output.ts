// Every command's outputs go through here: all checked before any work (new path or regular file,
// never a special file, existing ones only with --overwrite), then built under a temporary name and renamed.
import { constants, type Stats } from "node:fs";
import { access, link, lstat, mkdir, readdir, readlink, realpath, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve, sep } from "node:path";
import { writeTextAtomically } from "@balora/safetensors";
import { CliError, type FlagSpec } from "./args.js";
import { registerTemp, unregisterTemp } from "./cleanup.js";
import { holdBeforeCommit } from "./test-hooks.js";

export const OVERWRITE_FLAG = {
  type: "boolean",
  help: "replace an existing output (a file, or a directory balora wrote)",
} as const satisfies FlagSpec;

export type OutputKind = "file" | "directory";

export interface OutputSpec {
  /** The flag that named it, e.g. "--out". */
  flag: string;
  /** The path as the user wrote it. */
  path: string;
  kind: OutputKind;
  /** For a file output given a directory: an example file name to suggest. */
  example?: string;
}

export interface PlannedOutput extends OutputSpec {
  /** Where the output goes: `path` resolved, symbolic links followed. */
  target: string;
  /** Whether `target` exists (and will be replaced: only with --overwrite). */
  exists: boolean;
}

export interface PlanOptions {
  overwrite?: boolean;
  /** Input paths that an output must not replace (e.g. --model, --adapter, --input). */
  inputs?: { flag: string; path: string | undefined }[];
  /** Notes (e.g. a stale temporary removed) go here; default: stderr. */
  note?: (line: string) => void;
}

/** Files that mark a directory as something balora (or transformers/peft) wrote, so --overwrite may replace it. */
const OUTPUT_MARKERS = ["config.json", "adapter_config.json", "training_config.json"];

function kindOf(st: Stats): string {
  if (st.isCharacterDevice()) return "character device";
  if (st.isBlockDevice()) return "block device";
  if (st.isFIFO()) return "named pipe (FIFO)";
  if (st.isSocket()) return "socket";
  if (st.isDirectory()) return "directory";
  return "regular file";
}

const errno = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? "";

/** Follows symbolic links to the path that would be written; a dangling link gives its (new) target. */
async function followLinks(flag: string, given: string): Promise<{ target: string; st: Stats | null }> {
  let p = resolve(given);
  for (let hops = 0; hops <= 40; hops++) {
    let st: Stats;
    try {
      st = await lstat(p);
    } catch (e) {
      if (errno(e) === "ENOENT" || errno(e) === "ENOTDIR") return { target: p, st: null };
      throw e;
    }
    if (!st.isSymbolicLink()) return { target: p, st };
    p = resolve(dirname(p), await readlink(p));
  }
  throw new CliError(`${flag} ${given}: too many levels of symbolic links`);
}

/** Checks that `dir` exists, is a directory and can be written in. */
export async function requireParent(flag: string, given: string, dir: string): Promise<void> {
  let st: Stats;
  try {
    st = await stat(dir);
  } catch (e) {
    if (errno(e) === "ENOENT")
      throw new CliError(`${flag} ${given}: the directory ${dir} does not exist; create it first (mkdir -p ${dir})`);
    if (errno(e) === "ENOTDIR") throw new CliError(`${flag} ${given}: ${dir} is not a directory (a part of the path is a file)`);
    throw e;
  }
  if (!st.isDirectory()) throw new CliError(`${flag} ${given}: ${dir} is not a directory`);
  try {
    await access(dir, constants.W_OK);
  } catch (e) {
    throw new CliError(`${flag} ${given}: cannot write in ${dir} (${errno(e) || (e as Error).message})`);
  }
}

/** `.NAME.PID.tmp` (the output being built) or `.NAME.PID.old` (the output being replaced), beside it. */
export function tempPath(target: string, suffix: "tmp" | "old", pid = process.pid): string {
  return join(dirname(target), `.${basename(target)}.${pid}.${suffix}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errno(e) === "EPERM";
  }
}

/**
 * Removes `.NAME.PID.tmp` left beside `target` by runs that died (kill -9, power loss), and puts
 * back a `.NAME.PID.old` whose replacement never arrived.
 */
export async function sweepStaleTemps(target: string, note: (line: string) => void): Promise<void> {
  const dir = dirname(target);
  const base = basename(target);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  const escaped = base.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const re = new RegExp(`^\\.${escaped}\\.(\\d+)\\.(tmp|old)$`);
  for (const name of names.sort()) {
    const m = re.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || alive(pid)) continue;
    const p = join(dir, name);
    const targetMissing = await lstat(target).then(
      () => false,
      () => true,
    );
    if (m[2] === "old" && targetMissing) {
      await rename(p, target);
      note(`balora: restored ${target} from ${name}, left by an interrupted run (pid ${pid})`);
    } else {
      await rm(p, { recursive: true, force: true });
      note(`balora: removed ${join(dir, name)}, left by an interrupted run (pid ${pid})`);
    }
  }
}

async function planOne(spec: OutputSpec, opts: PlanOptions, note: (line: string) => void): Promise<PlannedOutput> {
  const { flag, path: given, kind } = spec;
  let { target, st } = await followLinks(flag, given);
  const via = target === resolve(given) ? "" : ` (a symbolic link to ${target})`;
  await requireParent(flag, given, dirname(target));
  await sweepStaleTemps(target, note);
  if (!st) st = await lstat(target).catch(() => null);
  if (!st) return { ...spec, target, exists: false };
  const what = kindOf(st);
  if (what !== "regular file" && what !== "directory")
    throw new CliError(
      `${flag} ${given} is a ${what}${via}; balora writes outputs only to regular files or new paths and never replaces a special file`,
    );
  if (kind === "file" && what === "directory")
    throw new CliError(
      `${flag} ${given} is a directory${via}; give a file path${spec.example ? `, e.g. ${join(given, spec.example)}` : ""}`,
    );
  if (kind === "directory" && what === "regular file")
    throw new CliError(`${flag} ${given} is a file${via}; this command writes a directory there`);
  if (!opts.overwrite) throw new CliError(`${flag} ${given} already exists${via}; choose a new path, or pass --overwrite to replace it`);
  if (what === "directory") {
    const entries = await readdir(target);
    if (entries.length > 0 && !OUTPUT_MARKERS.some((m) => entries.includes(m)))
      throw new CliError(
        `${flag} ${given} is a directory that balora did not write (no ${OUTPUT_MARKERS.join(", ")}); ` +
          `--overwrite replaces only outputs, so choose a new path or remove it yourself`,
      );
  }
  return { ...spec, target, exists: true };
}

/**
 * Checks every output of a command before it does any work: parent directory present and writable,
 * not a special file, not an existing path unless --overwrite, not one of the inputs, not twice.
 */
export async function planOutputs(specs: OutputSpec[], opts: PlanOptions = {}): Promise<PlannedOutput[]> {
  const note = opts.note ?? ((line: string) => console.error(line));
  const planned: PlannedOutput[] = [];
  for (const spec of specs) {
    const p = await planOne(spec, opts, note);
    const twice = planned.find((q) => q.target === p.target);
    if (twice) throw new CliError(`${p.flag} ${p.path} and ${twice.flag} ${twice.path} are the same path; give each output its own`);
    for (const input of opts.inputs ?? []) {
      if (!input.path) continue;
      const real = await realpath(input.path).catch(() => resolve(input.path!));
      const realTarget = p.exists ? await realpath(p.target).catch(() => p.target) : p.target;
      if (real === realTarget || real.startsWith(realTarget + sep))
        throw new CliError(`${p.flag} ${p.path} would replace ${input.flag} ${input.path}; write the output somewhere else`);
    }
    planned.push(p);
  }
  return planned;
}

export const planOutput = async (spec: OutputSpec, opts: PlanOptions = {}): Promise<PlannedOutput> => (await planOutputs([spec], opts))[0];

/** Creates the registered temporary directory for `o` (removing a leftover of this same pid first). */
async function makeTemp(o: PlannedOutput): Promise<string> {
  const tmp = tempPath(o.target, "tmp");
  registerTemp(tmp);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  return tmp;
}

/** Right before the rename: the target must still be what planOutputs saw. */
async function recheck(o: PlannedOutput): Promise<void> {
  const st = await lstat(o.target).catch(() => null);
  if (!o.exists && st) throw new CliError(`${o.flag} ${o.path} appeared while balora was working; nothing was replaced`);
  if (o.exists && st && kindOf(st) !== (o.kind === "file" ? "regular file" : "directory"))
    throw new CliError(`${o.flag} ${o.path} changed into a ${kindOf(st)} while balora was working; nothing was replaced`);
}

/**
 * Writes a file output: `produce` writes the complete file at the path it is given (inside a
 * temporary directory beside the target), which is then moved into place in one step.
 */
export async function writeFileOutput(o: PlannedOutput, produce: (file: string) => Promise<void>): Promise<void> {
  if (o.kind !== "file") throw new TypeError(`writeFileOutput: ${o.flag} is a ${o.kind} output`);
  const tmp = await makeTemp(o);
  try {
    const file = join(tmp, basename(o.target));
    await produce(file);
    await holdBeforeCommit();
    await recheck(o);
    if (o.exists) await rename(file, o.target);
    else {
      // link() refuses an existing target, so a file that appeared meanwhile is never replaced
      try {
        await link(file, o.target);
      } catch (e) {
        if (errno(e) === "EEXIST") throw new CliError(`${o.flag} ${o.path} appeared while balora was working; nothing was replaced`);
        if (!["EPERM", "ENOTSUP", "EOPNOTSUPP", "EXDEV", "EMLINK", "ENOSYS"].includes(errno(e))) throw e;
        await rename(file, o.target);
      }
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
    unregisterTemp(tmp);
  }
}

/** Writes a text file output (UTF-8). */
export const writeTextOutput = (o: PlannedOutput, text: string): Promise<void> =>
  writeFileOutput(o, (file) => writeTextAtomically(file, text));

/**
 * Builds a directory output: `build` fills the temporary directory it is given, which then takes
 * the target's place (an existing one, allowed by --overwrite, is swapped out and removed).
 */
export async function writeDirOutput(o: PlannedOutput, build: (dir: string) => Promise<void>): Promise<void> {
  if (o.kind !== "directory") throw new TypeError(`writeDirOutput: ${o.flag} is a ${o.kind} output`);
  const tmp = await makeTemp(o);
  try {
    await build(tmp);
    await holdBeforeCommit();
    await recheck(o);
    if (!o.exists) await rename(tmp, o.target);
    else {
      const old = tempPath(o.target, "old");
      // Until the new output is in place, a clean-up puts the old one back.
      registerTemp(old, o.target);
      try {
        await rename(o.target, old);
        try {
          await rename(tmp, o.target);
        } catch (e) {
          await rename(old, o.target);
          throw e;
        }
        await rm(old, { recursive: true, force: true });
      } finally {
        unregisterTemp(old);
      }
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
    unregisterTemp(tmp);
  }
}
