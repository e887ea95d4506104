// The `balora` command line (contract in DESIGN.md §4): parses arguments, runs one command, and turns
// every user mistake into one line on stderr and a non-zero exit code, never a stack trace.
import { readFileSync } from "node:fs";
import { SafetensorsFormatError } from "@balora/safetensors";
import { BaloraError, releaseWebGPU } from "@balora/tensor";
import { CliError, ExitRequest, type FlagSpecs, formatFlags, UsageError } from "./args.js";
import { installSignalHandlers } from "./cleanup.js";
import { demoCommand } from "./demo.js";
import { evalCommand } from "./eval.js";
import { forwardCommand } from "./forward.js";
import { generateCommand } from "./generate.js";
import { initCommand } from "./init.js";
import { lossCommand } from "./loss.js";
import { mergeCommand } from "./merge.js";
import { reportCommand } from "./report.js";
import { setQuiet } from "./progress.js";
import { trainCommand } from "./train.js";

export interface Command {
  summary: string;
  usage: string;
  /** Every flag, for parsing and for `--help`. */
  flags: FlagSpecs;
  /** More lines for `--help`. */
  details?: string;
  run(argv: string[]): Promise<void>;
}

/** Exit codes: 0 success, 1 an error in a file, value or the device, 2 a usage mistake, 128 + N killed by signal N. */
export const EXIT = { ok: 0, error: 1, usage: 2 } as const;

const COMMANDS: Record<string, Command> = {
  demo: demoCommand,
  eval: evalCommand,
  forward: forwardCommand,
  generate: generateCommand,
  init: initCommand,
  loss: lossCommand,
  merge: mergeCommand,
  report: reportCommand,
  train: trainCommand,
};

/** The version in @balora/ba-lora's package.json (src/cli and dist/cli are both two levels below it). */
export function version(): string {
  return JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version;
}

const RULES =
  "Outputs: written under a temporary name beside the target, then renamed; an existing output is an error\n" +
  "unless --overwrite; special files (devices, FIFOs) are never written, symbolic links are followed.\n" +
  "Ctrl-C exits 130, SIGTERM 143.\n" +
  "BALORA_BACKEND=cpu runs on the float64 CPU backend instead of WebGPU.";

function help(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return (
    `balora ${version()}: BA-LoRA fine-tuning of LLaMA, Mistral and Gemma on WebGPU\n\nusage: balora <command> [options]\n\n` +
    `commands:\n${lines.join("\n")}\n\nRun 'balora <command> --help' for a command's options and defaults.\n\n${RULES}\n` +
    "Exit codes: 0 success, 1 error (file, value, device), 2 usage mistake, 130 Ctrl-C, 143 SIGTERM."
  );
}

function commandHelp(c: Command): string {
  const overwrite = "overwrite" in c.flags ? `\n\n${RULES}` : "";
  return `usage: ${c.usage}\n\n${c.summary}${c.details ? `\n${c.details}` : ""}\n\noptions:\n${formatFlags(c.flags)}${overwrite}`;
}

/** Errors the user can fix from the message alone: printed as one line. */
const FS_CODES = [
  "ENOENT",
  "EACCES",
  "EPERM",
  "ENOTDIR",
  "EISDIR",
  "EEXIST",
  "ENOSPC",
  "EROFS",
  "EDQUOT",
  "EMFILE",
  "ELOOP",
  "ENAMETOOLONG",
];

function isUserError(e: unknown): boolean {
  return (
    e instanceof CliError ||
    e instanceof BaloraError ||
    e instanceof SafetensorsFormatError ||
    FS_CODES.includes((e as NodeJS.ErrnoException)?.code ?? "")
  );
}

/** Runs the CLI; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-V") {
    console.log(version());
    return EXIT.ok;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    console.log(help());
    return EXIT.ok;
  }
  if (!name) {
    console.error(help());
    return EXIT.usage;
  }
  const cmd = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!cmd) {
    console.error(`balora: unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(", ")}); see 'balora --help'`);
    return EXIT.usage;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(commandHelp(cmd));
    return EXIT.ok;
  }
  if (rest.includes("--version")) {
    console.log(version());
    return EXIT.ok;
  }
  setQuiet(rest.includes("--quiet"));
  try {
    await cmd.run(rest);
    return EXIT.ok;
  } catch (e) {
    const err = e as Error;
    if (e instanceof ExitRequest) {
      if (err.message) console.error(`balora ${name}: ${err.message}`);
      return e.code;
    }
    if (e instanceof UsageError) {
      console.error(`balora ${name}: ${err.message}\nusage: ${cmd.usage} (see 'balora ${name} --help')`);
      return EXIT.usage;
    }
    if (isUserError(e)) console.error(`balora ${name}: ${err.message.split("\n")[0]}`);
    else if (e instanceof RangeError && /Array buffer allocation failed|Invalid typed array length|Invalid array length/.test(err.message))
      console.error(`balora ${name}: out of memory (${err.message}); use a smaller model, batch, rank or prompt`);
    else {
      console.error(`balora ${name}: internal error: ${err?.message ?? String(e)}`);
      if (process.env.BALORA_DEBUG) console.error(err?.stack);
      else console.error("(this is a bug in balora; rerun with BALORA_DEBUG=1 for a stack trace and report it)");
    }
    return EXIT.error;
  } finally {
    setQuiet(false);
    // Dawn keeps the process alive while a device exists.
    await releaseWebGPU();
  }
}

/** The `balora` process: Ctrl-C and SIGTERM clean temporary outputs and exit 130 / 143, then `main`. */
export async function cli(argv: string[]): Promise<number> {
  installSignalHandlers();
  return main(argv);
}
