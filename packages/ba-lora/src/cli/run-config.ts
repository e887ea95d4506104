// `--config FILE.json` of `balora loss` (and `balora train`): one JSON object, a syntax error named by file, line
// and column, keys checked against the command's own set, and the regularizer settings both commands share.
import { readFile } from "node:fs/promises";
import { MASK_MODES, MAX_TOP_K, type MaskMode, PRESETS, type PresetName, type RegularizersConfig } from "@balora/regularizers";
import { CliError } from "./args.js";
import { requireFile } from "./inputs.js";

/** The regularizer keys of a config file (snake_case, as training_config.json spells them); the trainer adds its own. */
export const REGULARIZER_KEYS = [
  "preset",
  "mask_mode",
  "lambda1",
  "lambda2",
  "lambda3",
  "k",
  "tau",
  "top_k_entropy",
  "plugins",
  "regularizers",
] as const;

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

/** The regularizer settings of a config file or the flags, checked; absent keys stay absent. */
export interface RegularizerSettings {
  preset?: PresetName;
  mask_mode?: MaskMode;
  lambda1?: number;
  lambda2?: number;
  lambda3?: number;
  k?: number;
  tau?: number;
  top_k_entropy?: number;
  plugins?: string[];
  /** Passed to resolveConfig as-is (its `terms`, `consistency`, `diversity`, `svd`, ... fields). */
  regularizers?: RegularizersConfig;
}

const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/**
 * Checks the REGULARIZER_KEYS of `values` (undefined ones are skipped); `fail(key, why)` throws the caller's
 * error (naming the file or the flag). Other keys are ignored: `readRunConfig` has checked them.
 */
export function checkRegularizerSettings(values: Record<string, unknown>, fail: (key: string, why: string) => never): RegularizerSettings {
  const out: RegularizerSettings = {};
  const v = (k: string) => values[k];
  if (v("preset") !== undefined) {
    if (!PRESETS.includes(v("preset") as PresetName))
      fail("preset", `must be one of ${PRESETS.join(", ")}, got ${JSON.stringify(v("preset"))}`);
    out.preset = v("preset") as PresetName;
  }
  if (v("mask_mode") !== undefined) {
    if (!MASK_MODES.includes(v("mask_mode") as MaskMode))
      fail("mask_mode", `must be one of ${MASK_MODES.join(", ")}, got ${JSON.stringify(v("mask_mode"))}`);
    out.mask_mode = v("mask_mode") as MaskMode;
  }
  for (const k of ["lambda1", "lambda2", "lambda3"] as const) {
    const x = v(k);
    if (x === undefined) continue;
    if (!isNumber(x) || x < 0) fail(k, `must be a number >= 0 (0 turns the term off), got ${JSON.stringify(x)}`);
    out[k] = x as number;
  }
  if (v("k") !== undefined) {
    const x = v("k");
    if (!isNumber(x) || !Number.isInteger(x) || x < 1)
      fail("k", `must be an integer >= 1 (singular values in the SVD term), got ${JSON.stringify(x)}`);
    out.k = x as number;
  }
  if (v("tau") !== undefined) {
    const x = v("tau");
    if (!isNumber(x) || x <= 0) fail("tau", `must be a number > 0 (the consistency temperature), got ${JSON.stringify(x)}`);
    out.tau = x as number;
  }
  if (v("top_k_entropy") !== undefined) {
    const x = v("top_k_entropy");
    if (!isNumber(x) || !Number.isInteger(x) || x < 0 || x > MAX_TOP_K)
      fail("top_k_entropy", `must be an integer from 0 (the full vocabulary) to ${MAX_TOP_K}, got ${JSON.stringify(x)}`);
    out.top_k_entropy = x as number;
  }
  if (v("plugins") !== undefined) {
    const x = v("plugins");
    if (!Array.isArray(x) || !x.every((p) => typeof p === "string" && p !== ""))
      fail("plugins", `must be a list of package names or paths, got ${JSON.stringify(x)}`);
    out.plugins = x as string[];
  }
  if (v("regularizers") !== undefined) {
    const x = v("regularizers");
    if (x === null || typeof x !== "object" || Array.isArray(x))
      fail("regularizers", `must be an object of regularizer settings ({"terms": {...}, "svd": {...}}), got ${JSON.stringify(x)}`);
    out.regularizers = x as RegularizersConfig;
  }
  return out;
}

/** Settings of a file, then the flags over them (plugins of both, each once). */
export function mergeRegularizerSettings(file: RegularizerSettings, flags: RegularizerSettings): RegularizerSettings {
  const out: RegularizerSettings = { ...file };
  for (const [k, x] of Object.entries(flags)) if (x !== undefined) (out as Record<string, unknown>)[k] = x;
  out.plugins = [...new Set([...(file.plugins ?? []), ...(flags.plugins ?? [])])];
  return out;
}

/** The config resolveConfig takes: the `regularizers` object, with the flat settings over it. */
export function regularizersConfigOf(s: RegularizerSettings): RegularizersConfig {
  const c: RegularizersConfig = { ...(s.regularizers ?? {}) };
  if (s.preset !== undefined) c.preset = s.preset;
  if (s.mask_mode !== undefined) c.maskMode = s.mask_mode;
  if (s.lambda1 !== undefined) c.lambda1 = s.lambda1;
  if (s.lambda2 !== undefined) c.lambda2 = s.lambda2;
  if (s.lambda3 !== undefined) c.lambda3 = s.lambda3;
  if (s.k !== undefined) c.k = s.k;
  if (s.tau !== undefined) c.tau = s.tau;
  if (s.top_k_entropy !== undefined) c.topKEntropy = s.top_k_entropy;
  return c;
}
