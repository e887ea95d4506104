// The temporary paths of a run (outputs being built, an old output being swapped out) and their
// clean-up when the run ends early: on Ctrl-C/SIGTERM (exit 128 + signal number), on exit, by the bin.
import { existsSync, renameSync, rmSync, writeSync } from "node:fs";
import { constants } from "node:os";

/** A temporary path: removed on clean-up, or renamed back to `restoreTo` if nothing is there. */
export interface TempEntry {
  path: string;
  restoreTo?: string;
}

const entries = new Map<string, TempEntry>();

/**
 * The `balora` bin reads registrations on this descriptor (one JSON line each), so it can still
 * clean up when this process dies without running JS (SIGKILL, or a second Ctrl-C while busy).
 */
function tell(op: "add" | "remove", e: TempEntry): void {
  const fd = Number(process.env.BALORA_TEMP_FD);
  if (!Number.isInteger(fd) || fd < 3) return;
  try {
    writeSync(fd, `${JSON.stringify({ op, ...e })}\n`);
  } catch {
    // the bin is gone; the stale-temp sweep of the next run cleans up instead
  }
}

export function registerTemp(path: string, restoreTo?: string): void {
  const e = restoreTo ? { path, restoreTo } : { path };
  entries.set(path, e);
  tell("add", e);
}

export function unregisterTemp(path: string): void {
  if (!entries.delete(path)) return;
  tell("remove", { path });
}

/** Removes (or restores) one entry, synchronously, ignoring errors: it runs on the way out. */
export function cleanupEntry(e: TempEntry): void {
  try {
    if (e.restoreTo && existsSync(e.path) && !existsSync(e.restoreTo)) renameSync(e.path, e.restoreTo);
    else rmSync(e.path, { recursive: true, force: true });
  } catch {
    // best effort
  }
}

/** Cleans every registered entry, newest first. */
export function cleanupAll(): void {
  for (const e of [...entries.values()].reverse()) cleanupEntry(e);
  entries.clear();
}

/** Registered paths (for tests). */
export const registeredTemps = (): string[] => [...entries.keys()];

export const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
export const signalExitCode = (sig: NodeJS.Signals): number => 128 + (constants.signals[sig] ?? 0);

let installed = false;
let interruptHandler: ((sig: NodeJS.Signals) => void) | null = null;
let interruptedAt = 0;

/**
 * While set, the first SIGINT/SIGTERM/SIGHUP calls `handler` instead of exiting (training finishes its
 * step, writes a checkpoint, then exits 128 + N itself); repeats within 2 s are the same interruption
 * (a terminal's Ctrl-C reaches both the bin and this process); a later one exits at once.
 */
export function onInterrupt(handler: ((sig: NodeJS.Signals) => void) | null): void {
  interruptHandler = handler;
  interruptedAt = 0;
}

/**
 * For the CLI process only (not when `main` runs inside another program): on SIGINT/SIGTERM/SIGHUP,
 * remove the temporary paths and exit 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM).
 * When the bin that started this process dies, do the same instead of running on as an orphan.
 */
export function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  for (const sig of SIGNALS)
    process.on(sig, () => {
      if (interruptHandler && (interruptedAt === 0 || Date.now() - interruptedAt < 2000)) {
        if (interruptedAt === 0) {
          interruptedAt = Date.now();
          interruptHandler(sig);
        }
        return;
      }
      cleanupAll();
      try {
        writeSync(2, `balora: interrupted by ${sig}; temporary files removed\n`);
      } catch {
        // stderr closed
      }
      process.exit(signalExitCode(sig));
    });
  process.on("exit", cleanupAll);
  if (process.env.BALORA_CLI_CHILD) {
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid === parent) return;
      cleanupAll();
      process.exit(signalExitCode("SIGHUP"));
    }, 500).unref();
  }
}
