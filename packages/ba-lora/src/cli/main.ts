// The `balora` command line (contract in DESIGN.md §4): parses arguments, runs one command, and turns
// every user mistake into one line on stderr and a non-zero exit code, never a stack trace.
import { SafetensorsFormatError } from "@balora/safetensors";
import { BaloraError, releaseWebGPU } from "@balora/tensor";
import { UsageError } from "./args.js";
import { forwardCommand } from "./forward.js";
import { generateCommand } from "./generate.js";
import { initCommand } from "./init.js";
import { mergeCommand } from "./merge.js";

export interface Command {
  summary: string;
  usage: string;
  run(argv: string[]): Promise<void>;
}

const COMMANDS: Record<string, Command> = {
  forward: forwardCommand,
  generate: generateCommand,
  init: initCommand,
  merge: mergeCommand,
};

function help(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return (
    `balora: BA-LoRA fine-tuning of LLaMA, Mistral and Gemma on WebGPU\n\nusage: balora <command> ` +
    `[options]\n\ncommands:\n${lines.join("\n")}\n\nRun 'balora <command> --help' for a command's options.`
  );
}

/** Runs the CLI; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(help());
    return name ? 0 : 1;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`balora: unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(", ")}); see 'balora --help'`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(`usage: ${cmd.usage}\n\n${cmd.summary}`);
    return 0;
  }
  try {
    await cmd.run(rest);
    return 0;
  } catch (e) {
    const err = e as Error;
    if (e instanceof UsageError) console.error(`balora ${name}: ${err.message}\nusage: ${cmd.usage}`);
    else if (
      e instanceof BaloraError ||
      e instanceof SafetensorsFormatError ||
      ["ENOENT", "EACCES", "ENOTDIR", "EEXIST"].includes((e as NodeJS.ErrnoException).code ?? "")
    )
      console.error(`balora ${name}: ${err.message}`);
    else {
      console.error(`balora ${name}: internal error: ${err.message}`);
      if (process.env.BALORA_DEBUG) console.error(err.stack);
      else console.error("(this is a bug in balora; rerun with BALORA_DEBUG=1 for a stack trace and report it)");
    }
    return 1;
  } finally {
    // Dawn keeps the process alive while a device exists.
    await releaseWebGPU();
  }
}
