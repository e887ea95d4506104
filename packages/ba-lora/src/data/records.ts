// Data files as records with their line numbers: JSONL (one object a line) or one JSON array, parsed
// from text in memory (the CLI reads the file), so every later error can name the file and the line.
import { BaloraError } from "@balora/tensor";

/** A data file or row the user can fix: the message names the file, the line and the field. */
export class DataError extends BaloraError {
  override name = "DataError";
}

/** One record of a data file: the file's name (for messages), its 1-based line (where it starts), its JSON value. */
export interface DataRecord {
  file: string;
  line: number;
  value: unknown;
}

/** 1-based line numbers of ascending offsets into `text`, in one pass. */
function linesOf(text: string, offsets: number[]): number[] {
  const lines: number[] = [];
  let line = 1;
  let at = 0;
  for (const offset of offsets) {
    for (; at < offset; at++) if (text.charCodeAt(at) === 10) line++;
    lines.push(line);
  }
  return lines;
}

/** Start offsets of the top-level elements of a JSON array text (already known to parse). */
function arrayElementStarts(text: string, open: number): number[] {
  const starts: number[] = [];
  let depth = 0;
  let expectValue = false;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      if (depth === 1 && expectValue) {
        starts.push(i);
        expectValue = false;
      }
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++;
      continue;
    }
    if (c === " " || c === "\t" || c === "\n" || c === "\r") continue;
    if (depth === 1 && expectValue && c !== "]") {
      starts.push(i);
      expectValue = false;
    }
    if (c === "[" || c === "{") {
      depth++;
      if (depth === 1) expectValue = true;
    } else if (c === "]" || c === "}") depth--;
    else if (c === "," && depth === 1) expectValue = true;
    if (depth === 0) break;
  }
  return starts;
}

/**
 * Parses a data file's text: a JSON array of records (when the first non-blank character is `[`)
 * or JSONL (one JSON value per non-blank line). `file` names the source in error messages.
 */
export function parseRecords(text: string, file: string): DataRecord[] {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const first = body.search(/\S/);
  if (first < 0) throw new DataError(`${file}: the file is empty; expected JSONL (one JSON object per line) or a JSON array`);
  if (body[first] === "[") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (e) {
      throw new DataError(`${file}: invalid JSON array (${(e as Error).message}); a file starting with '[' must be one JSON array`);
    }
    const values = parsed as unknown[];
    const lines = linesOf(body, arrayElementStarts(body, first));
    return values.map((value, i) => ({ file, line: lines[i] ?? 1, value }));
  }
  const records: DataRecord[] = [];
  const lines = body.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === "") continue;
    try {
      records.push({ file, line: i + 1, value: JSON.parse(raw) });
    } catch (e) {
      throw new DataError(`${file}:${i + 1}: invalid JSON (${(e as Error).message}); JSONL needs one JSON object per line`);
    }
  }
  return records;
}

/** A record that is not usable, with the reason (for `skipInvalid` counts and messages). */
export interface InvalidRecord {
  line: number;
  reason: string;
}

/** Why a record cannot be used: returned (not thrown) by row checks, so `skipInvalid` can count it. */
export class Invalid {
  constructor(readonly reason: string) {}
}

/** The keys of a record, for messages ("fields: a, b"). */
export const keysOf = (v: unknown): string =>
  v && typeof v === "object" && !Array.isArray(v) ? Object.keys(v).join(", ") || "none" : "not an object";

/** Describes a JSON value's type in messages. */
export const typeName = (v: unknown): string => (v === null ? "null" : Array.isArray(v) ? "an array" : `a ${typeof v}`);

/** The record as an object, or why it is not one. */
export function asObject(value: unknown, wanted: string): Record<string, unknown> | Invalid {
  if (!value || typeof value !== "object" || Array.isArray(value))
    return new Invalid(`the record is ${typeName(value)}, expected a JSON object with ${wanted}`);
  return value as Record<string, unknown>;
}

/** The string value of `field` in `row`, or why it is not usable. */
export function stringField(row: Record<string, unknown>, field: string): string | Invalid {
  const v = row[field];
  if (v === undefined) return new Invalid(`no field '${field}' (fields: ${keysOf(row)})`);
  if (typeof v !== "string") return new Invalid(`field '${field}' is ${typeName(v)}, expected a string`);
  return v;
}

/**
 * Applies `check` to every record: an `Invalid` result throws `DataError` naming the file, line and
 * reason, or (with `skipInvalid`) is counted in `skipped` and left out.
 */
export function collectValid<T>(
  records: DataRecord[],
  skipInvalid: boolean,
  check: (r: DataRecord) => T | Invalid,
): { items: T[]; skipped: InvalidRecord[] } {
  const items: T[] = [];
  const skipped: InvalidRecord[] = [];
  for (const r of records) {
    const out = check(r);
    if (!(out instanceof Invalid)) items.push(out);
    else if (skipInvalid) skipped.push({ line: r.line, reason: out.reason });
    else throw new DataError(`${r.file}:${r.line}: ${out.reason} (--skip-invalid skips such rows)`);
  }
  return { items, skipped };
}
