// `--config FILE.json` of `balora loss` (and `balora train`): one JSON object, a syntax error named by file, line
// and column, keys checked against the command's own set, and the regularizer settings both commands share.
import { readFile } from "node:fs/promises";
import { CliError } from "./args.js";
import { requireFile } from "./inputs.js";

export {
  checkRegularizerSettings,
  mergeRegularizerSettings,
  REGULARIZER_KEYS,
  type RegularizerSettings,
  regularizersConfigOf,
} from "../train/config.js";

/** Line and column (1-based) of character `pos` of `text`. */
function lineColumn(text: string, pos: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(pos, text.length)));
  const lines = before.split("\n");
  return { line: lines.length, column: lines[lines.length - 1].length + 1 };
}

/** Where JSON text stops being valid (a small scanner: Node 20's JSON.parse does not always say). */
export function jsonErrorAt(text: string): number {
  let i = 0;
  const stop = new Error("stop");
  const fail = (): never => {
    throw stop;
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const string = (): void => {
    i++;
    while (i < text.length) {
      const c = text[i];
      if (c === '"') {
        i++;
        return;
      }
      if (c === "\\") {
        const n = text[i + 1];
        if (n === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
        else if (n !== undefined && '"\\/bfnrt'.includes(n)) i += 2;
        else fail();
      } else if (c < " ") fail();
      else i++;
    }
    fail();
  };
  const value = (): void => {
    ws();
    const open = text[i];
    if (open === "{" || open === "[") {
      const close = open === "{" ? "}" : "]";
      i++;
      ws();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (open === "{") {
          ws();
          if (text[i] !== '"') fail();
          string();
          ws();
          if (text[i] !== ":") fail();
          i++;
        }
        value();
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === close) {
          i++;
          return;
        } else fail();
      }
    }
    if (open === '"') {
      string();
      return;
    }
    const literal = /^(true|false|null|-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?)/.exec(text.slice(i, i + 400));
    i += literal ? literal[0].length : fail();
  };
  try {
    value();
    ws();
    return i < text.length ? i : -1;
  } catch (e) {
    if (e !== stop) throw e;
    return i;
  }
}

/** JSON.parse's reason without its position or quoted excerpt. */
const reasonOf = (message: string): string =>
  message
    .replace(/\s*\(line \d+ column \d+\)/, "")
    .replace(/\s*(in JSON )?at position \d+/, "")
    .replace(/, (\.\.\.)?"[\s\S]*$/, "");

/**
 * Reads a run's `--config FILE.json`: a JSON object whose keys are all in `knownKeys` (the command's set,
 * e.g. REGULARIZER_KEYS, or those plus the trainer's). Every mistake is one CliError naming the file: a
 * syntax error with its line and column, a value that is not an object, the first unknown key.
 */
export async function readRunConfig(path: string, knownKeys: readonly string[], flag = "--config"): Promise<Record<string, unknown>> {
  await requireFile(flag, path, "a JSON file with one object of settings");
  const text = (await readFile(path, "utf8")).replace(/^\uFEFF/, "");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const at = lineColumn(text, Math.max(jsonErrorAt(text), 0));
    throw new CliError(
      `${flag} ${path}:${at.line}:${at.column}: invalid JSON (${reasonOf((e as Error).message)}); the file must hold one JSON object`,
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    const got = value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
    throw new CliError(`${flag} ${path}: must hold one JSON object of settings ({"preset": "iclr2026", ...}), got ${got}`);
  }
  for (const key of Object.keys(value))
    if (!knownKeys.includes(key)) throw new CliError(`${flag} ${path}: unknown key "${key}" (keys: ${knownKeys.join(", ")})`);
  return value as Record<string, unknown>;
}
