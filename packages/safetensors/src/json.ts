// JSON details the format needs beyond JSON.parse/stringify: finding duplicate keys (JSON.parse
// silently keeps the last one) and writing the index exactly like Python's json.dump(indent=2).

export interface DuplicateKey {
  key: string;
  /** Keys of the enclosing objects, outermost first ([] = a key of the top-level object). */
  path: string[];
}

interface Frame {
  keys: Set<string> | undefined; // undefined for arrays
  name: string;
  expectingKey: boolean;
  lastKey: string;
}

/** Every repeat of a key within one object of `text`, which must already be valid JSON. */
export function findDuplicateKeys(text: string): DuplicateKey[] {
  const duplicates: DuplicateKey[] = [];
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const top = stack[stack.length - 1];
    if (c === 0x22 /* " */) {
      const end = endOfString(text, i);
      if (top?.keys && top.expectingKey) {
        const raw = text.slice(i + 1, end);
        const key = raw.includes("\\") ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        if (top.keys.has(key)) duplicates.push({ key, path: stack.slice(1).map((f) => f.name) });
        top.keys.add(key);
        top.lastKey = key;
        top.expectingKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const name = top === undefined ? "" : top.keys ? top.lastKey : "[]";
      stack.push({ keys: c === 0x7b ? new Set() : undefined, name, expectingKey: true, lastKey: "" });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */ && top?.keys) {
      top.expectingKey = true;
    }
  }
  return duplicates;
}

function endOfString(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) i++;
    else if (c === 0x22) return i;
  }
  return text.length - 1;
}

/** A Python float: printed with a decimal point even when integral (0.0, 8.0), as json.dumps does. */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** JSON values in a given key order (a Map keeps order; plain objects put integer-like keys first). */
export type OrderedJson =
  | string
  | number
  | boolean
  | null
  | PyFloat
  | readonly OrderedJson[]
  | ReadonlyMap<string, OrderedJson>
  | { readonly [k: string]: OrderedJson };

export interface PythonJsonOptions {
  /** json.dumps(sort_keys=True): sort object keys at every level. */
  sortKeys?: boolean;
}

function pyNumber(v: number): string {
  if (!Number.isFinite(v)) return v > 0 ? "Infinity" : v < 0 ? "-Infinity" : "NaN";
  return String(v).replace(/e([+-])(\d)$/, "e$10$2"); // Python pads exponents to two digits
}

/** `json.dumps(value, indent=2)` as CPython writes it: ", " / ": " separators, non-ASCII escaped. */
export function pythonJsonDump(value: OrderedJson, level = 0, opts: PythonJsonOptions = {}): string {
  if (value === null) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "string") return pythonJsonString(value);
  if (typeof value === "number") return pyNumber(value);
  if (value instanceof PyFloat) return Number.isInteger(value.value) ? `${value.value}.0` : pyNumber(value.value);
  const inner = "  ".repeat(level + 1);
  const close = "  ".repeat(level);
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return `[\n${value.map((v) => `${inner}${pythonJsonDump(v, level + 1, opts)}`).join(",\n")}\n${close}]`;
  }
  let entries =
    value instanceof Map ? [...(value as ReadonlyMap<string, OrderedJson>)] : Object.entries(value as { [k: string]: OrderedJson });
  if (entries.length === 0) return "{}";
  if (opts.sortKeys) entries = entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const lines = entries.map(([k, v]) => `${inner}${pythonJsonString(k)}: ${pythonJsonDump(v, level + 1, opts)}`);
  return `{\n${lines.join(",\n")}\n${close}}`;
}

/** A JSON string with ensure_ascii=True: everything outside ' '..'~' as \uXXXX (lowercase hex). */
function pythonJsonString(s: string): string {
  return JSON.stringify(s).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
