// Argument parsing for the CLI on node:util parseArgs: typed flag specs, numbers validated with
// the flag named in the message, unknown flags and missing required ones reported as UsageError.
import { parseArgs } from "node:util";

export class UsageError extends Error {
  override name = "UsageError";
}

export type FlagSpec = {
  type: "string" | "number" | "boolean";
  required?: boolean;
  multiple?: boolean;
  default?: string | number | boolean;
};
type Parsed<S extends Record<string, FlagSpec>> = {
  [K in keyof S]: S[K]["type"] extends "number"
    ? number
    : S[K]["type"] extends "boolean"
      ? boolean
      : S[K]["multiple"] extends true
        ? string[]
        : string;
};

/** Parses `--kebab-case` flags into camelCase keys of `spec`. */
export function parse<S extends Record<string, FlagSpec>>(argv: string[], spec: S): Partial<Parsed<S>> {
  const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {};
  for (const [k, s] of Object.entries(spec))
    options[kebab(k)] = { type: s.type === "boolean" ? "boolean" : "string", ...(s.multiple ? { multiple: true } : {}) };
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
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
    out[k] = v;
  }
  return out as Partial<Parsed<S>>;
}

/** Requires a non-negative integer flag value. */
export function integer(flag: string, v: number, min = 0): number {
  if (!Number.isInteger(v) || v < min) throw new UsageError(`${flag} must be an integer >= ${min}, got ${v}`);
  return v;
}
