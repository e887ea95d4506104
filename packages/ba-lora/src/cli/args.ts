// Argument parsing for the CLI on node:util parseArgs: typed flag specs with help text and defaults,
// `--flag -1` read as a value, numbers validated with the flag named, usage mistakes as UsageError.
import { parseArgs } from "node:util";

/** A mistake in how the command was called: printed with the command's usage line. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The run stopped on purpose (Ctrl-C after a checkpoint): `message` on stderr, then exit with `code`. */
export class ExitRequest extends Error {
  override name = "ExitRequest";
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** Anything else the user can fix (a file, a field, a shape, a path): printed as one line, no usage. */
export class CliError extends Error {
  override name = "CliError";
}

export type FlagSpec = {
  type: "string" | "number" | "boolean";
  /** One line for `--help`. */
  help: string;
  /** Placeholder of the value in `--help` (default: N for numbers, VALUE for strings). */
  value?: string;
  required?: boolean;
  multiple?: boolean;
  default?: string | number | boolean;
  /** The default `--help` shows when the command applies it itself (e.g. after a --config file). */
  shownDefault?: string | number | boolean;
};
export type FlagSpecs = Record<string, FlagSpec>;

type Parsed<S extends FlagSpecs> = {
  [K in keyof S]: S[K]["type"] extends "number"
    ? number
    : S[K]["type"] extends "boolean"
      ? boolean
      : S[K]["multiple"] extends true
        ? string[]
        : string;
};

export const kebab = (k: string): string => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/**
 * Joins `--flag VALUE` into `--flag=VALUE` for value flags, so a value that starts with one dash
 * (`--seed -1`, `--prompt -x`) reaches the flag's own check instead of parseArgs' "ambiguous" error.
 * A value flag followed by nothing or by another `--option` is reported as missing its value.
 */
function joinValues(argv: string[], spec: FlagSpecs): string[] {
  const valueFlags = new Set(
    Object.entries(spec)
      .filter(([, s]) => s.type !== "boolean")
      .map(([k]) => `--${kebab(k)}`),
  );
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      out.push(...argv.slice(i));
      break;
    }
    if (!valueFlags.has(a)) {
      out.push(a);
      continue;
    }
    const next = argv[i + 1];
    if (next === undefined) throw new UsageError(`${a} needs a value`);
    if (next.startsWith("--"))
      throw new UsageError(`${a} needs a value, got the option '${next}' (write ${a}=${next} if that is the value)`);
    out.push(`${a}=${next}`);
    i++;
  }
  return out;
}

/** Parses `--kebab-case` flags into camelCase keys of `spec`, filling defaults. */
export function parse<S extends FlagSpecs>(argv: string[], spec: S): Partial<Parsed<S>> {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {};
  for (const [k, s] of Object.entries(spec))
    options[kebab(k)] = { type: s.type === "boolean" ? "boolean" : "string", ...(s.multiple ? { multiple: true } : {}) };
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: joinValues(argv, spec), options, strict: true, allowPositionals: false }));
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^TypeError \[\w+\]: /, "").split("\n")[0]);
  }
  const out: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(spec)) {
    const flag = `--${kebab(k)}`;
    let v = values[kebab(k)];
    if (v === undefined) {
      if (s.required) throw new UsageError(`missing required option ${flag}`);
      if (s.default === undefined) continue;
      v = s.default;
    }
    if (s.type === "number" && typeof v === "string") {
      const n = Number(v);
      if (v.trim() === "" || !Number.isFinite(n)) throw new UsageError(`${flag} must be a number, got '${v}'`);
      v = n;
    }
    if (s.type === "string" && v === "") throw new UsageError(`${flag} must not be empty`);
    out[k] = v;
  }
  return out as Partial<Parsed<S>>;
}

/** Requires an integer flag value in [min, max]. */
export function integer(flag: string, v: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(v) || v < min || v > max)
    throw new UsageError(`${flag} must be an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`}, got ${v}`);
  return v;
}

/** The largest seed: the generators take 32-bit seeds, so larger ones would silently wrap. */
export const MAX_SEED = 2 ** 32 - 1;

/** The `options:` block of a command's `--help`: every flag, its value, its default. */
export function formatFlags(spec: FlagSpecs): string {
  const rows = Object.entries(spec).map(([k, s]) => {
    const value = s.type === "boolean" ? "" : ` ${s.value ?? (s.type === "number" ? "N" : "VALUE")}`;
    const note = s.required ? "required" : s.type === "boolean" ? "default: off" : `default: ${s.default ?? s.shownDefault ?? "none"}`;
    return [`--${kebab(k)}${value}`, `${s.help} (${note})`];
  });
  rows.push(["--help", "print this help"], ["--version", "print the balora version"]);
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  return rows.map(([f, h]) => `  ${f.padEnd(width)}${h}`).join("\n");
}
