// Test plumbing for the CLI: run `main` in-process capturing stdout/stderr, spawn the real bin (for
// signals and exit codes), the backend the tests use (BALORA_BACKEND=cpu or WebGPU), fixture paths.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as T from "@balora/tensor";
import { vi } from "vitest";
import { main } from "../src/cli/main.js";

export const modelFixture = (name: string): string => fileURLToPath(new URL(`../../models/test/fixtures/${name}`, import.meta.url));
export const BIN = fileURLToPath(new URL("../bin/balora.mjs", import.meta.url));

/** Whether the tests run on the CPU backend (BALORA_BACKEND=cpu), as the CLI does then. */
export const onCpu = (process.env.BALORA_BACKEND ?? "").toLowerCase() === "cpu";
export const testBackend = async (): Promise<T.Backend> => (onCpu ? T.cpuBackend() : T.initWebGPU());

/** Runs `main` in this process; stdout and stderr are captured, not printed. */
export async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, "log").mockImplementation((...a) => void out.push(a.join(" ")));
  const error = vi.spyOn(console, "error").mockImplementation((...a) => void err.push(a.join(" ")));
  const warn = vi.spyOn(console, "warn").mockImplementation((...a) => void err.push(a.join(" ")));
  const write = vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => {
    out.push(String(s));
    return true;
  });
  try {
    const code = await main(argv);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    log.mockRestore();
    error.mockRestore();
    warn.mockRestore();
    write.mockRestore();
  }
}

export interface BinResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/**
 * Spawns `bin/balora.mjs` (the built CLI). `onStderrLine` sees each stderr line as it arrives, with
 * the child process, so a test can signal it at a known point.
 */
export function runBin(
  argv: string[],
  opts: { env?: Record<string, string>; cwd?: string; onStderrLine?: (line: string, pid: number) => void; timeoutMs?: number } = {},
): Promise<BinResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...argv], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    let partial = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => {
      err += d;
      partial += d;
      const lines = partial.split("\n");
      partial = lines.pop()!;
      for (const line of lines) opts.onStderrLine?.(line, child.pid!);
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`balora ${argv.join(" ")} did not finish in ${opts.timeoutMs ?? 60_000} ms; stderr: ${err}`));
    }, opts.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    });
  });
}
