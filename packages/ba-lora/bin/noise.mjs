// Dawn prints these start-up warnings natively, once per device, where JS cannot catch them; the
// `balora` bin and scripts/turbo.mjs (test logs) drop exactly these lines and pass everything else.
import { createInterface } from "node:readline";

/** One Dawn limit warning, optionally after a "package:task: " prefix (turbo) and ANSI colour codes. */
export const DAWN_NOISE = /^(?:\S*: )?Warning: \w+ artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\s*$/;

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences start with ESC
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

export const isDawnNoise = (line) => DAWN_NOISE.test(line.replace(ANSI, ""));

/** Copies `input` to `output` line by line without Dawn's warnings; resolves when `input` ends. */
export function filterDawnNoise(input, output) {
  return new Promise((done) => {
    const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
    lines.on("line", (line) => {
      if (!isDawnNoise(line)) output.write(`${line}\n`);
    });
    lines.on("close", done);
  });
}
