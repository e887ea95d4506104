// Data files for the commands that read them (eval, and train/loss later): checked and read here at
// the Node edge, then parsed in memory by src/data; `--fields a,b` and `--template FILE` likewise.
import { readFile } from "node:fs/promises";
import { type DataRecord, parseRecords } from "../data/records.js";
import { UsageError } from "./args.js";
import { requireFile } from "./inputs.js";

/** Reads a JSONL / JSON-array data file into records (each with the path and line for messages). */
export async function readRecords(flag: string, path: string): Promise<DataRecord[]> {
  await requireFile(flag, path, "a data file (JSONL, one JSON object per line, or a JSON array)");
  return parseRecords(await readFile(path, "utf8"), path);
}

/** Reads a prompt template file (UTF-8; `{field}` placeholders), keeping it byte for byte. */
export async function readTemplate(flag: string, path: string): Promise<string> {
  await requireFile(flag, path, "a text file with the prompt template ({instruction} and other {field} placeholders)");
  return readFile(path, "utf8");
}

/** `--fields query,response`: two distinct non-empty field names. */
export function parseFields(flag: string, value: string): [string, string] {
  const parts = value.split(",").map((s) => s.trim());
  if (parts.length !== 2 || parts.some((p) => p === "") || parts[0] === parts[1])
    throw new UsageError(`${flag} takes two different field names separated by a comma (e.g. ${flag} query,response), got '${value}'`);
  return [parts[0], parts[1]];
}
