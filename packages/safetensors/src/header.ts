// The safetensors header: reading it with every rule of the format checked, and building it
// byte-for-byte like the reference Rust writer (safetensors/src/tensor.rs, `prepare`).
import { type Dtype, bytesPerElement, fmtShape, isDtype, isUnsupportedDtype, numelOf, writerRank } from "./dtypes.js";
import { SafetensorsFormatError, quote } from "./errors.js";
import { findDuplicateKeys } from "./json.js";

/** Largest header the reference reader accepts (MAX_HEADER_SIZE in tensor.rs). */
export const MAX_HEADER_BYTES = 100_000_000;
/** The header starts after the u64 little-endian header length. */
export const HEADER_LENGTH_BYTES = 8;

/** One tensor's entry in the header. Offsets are relative to the start of the data section. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly dataOffsets: readonly [begin: number, end: number];
}

export interface Header {
  /** `__metadata__`, or undefined when the header has none. */
  metadata: Readonly<Record<string, string>> | undefined;
  /** Tensors in data order. */
  tensors: TensorInfo[];
}

/** Reads N from the first 8 bytes and checks that the header fits the limit and the file. */
export function readHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < HEADER_LENGTH_BYTES) {
    throw new SafetensorsFormatError(file, `truncated file: ${fileSize} bytes, too short for the 8-byte header length`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, HEADER_LENGTH_BYTES).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsFormatError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (HEADER_LENGTH_BYTES + Number(n) > fileSize) {
    throw new SafetensorsFormatError(file, `header length ${n} runs past the end of the file (${fileSize} bytes): truncated file?`);
  }
  return Number(n);
}

/** Parses and validates the header JSON; `dataLength` is the file size minus 8 minus N. */
export function parseHeader(headerBytes: Uint8Array, dataLength: number, file: string): Header {
  const fail = (reason: string): never => {
    throw new SafetensorsFormatError(file, reason);
  };
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    return fail("header is not valid UTF-8");
  }
  if (!text.startsWith("{")) fail("header is not a JSON object (it must start with '{')");
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  const [duplicate] = findDuplicateKeys(text);
  if (duplicate) {
    const { key, path } = duplicate;
    fail(
      path.length === 0 ? `duplicate tensor name ${quote(key)} in header` : `duplicate key ${quote(key)} inside ${quote(path.join("."))}`,
    );
  }

  let metadata: Record<string, string> | undefined;
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(json)) {
    if (name === "__metadata__") metadata = parseMetadata(entry, fail);
    else tensors.push(parseEntry(name, entry, fail));
  }
  checkLayout(tensors, dataLength, fail);
  return { metadata, tensors };
}

function parseMetadata(value: unknown, fail: (reason: string) => never): Record<string, string> {
  if (!isPlainObject(value)) return fail("__metadata__ must be an object of strings");
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== "string") fail(`__metadata__ value of ${quote(key)} is ${describe(v)}, not a string`);
  }
  return value as Record<string, string>;
}

const ENTRY_FIELDS = ["dtype", "shape", "data_offsets"];

function parseEntry(name: string, entry: unknown, fail: (reason: string) => never): TensorInfo {
  const bad = (reason: string) => fail(`tensor ${quote(name)}: ${reason}`);
  if (!isPlainObject(entry)) return bad(`entry is ${describe(entry)}, not an object with dtype, shape, data_offsets`);
  for (const field of ENTRY_FIELDS) if (!Object.hasOwn(entry, field)) bad(`missing field ${field}`);
  for (const field of Object.keys(entry)) if (!ENTRY_FIELDS.includes(field)) bad(`unexpected field ${quote(field)}`);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (!isDtype(dtype)) {
    if (typeof dtype !== "string") return bad(`dtype is ${describe(dtype)}, not a string`);
    return bad(isUnsupportedDtype(dtype) ? `dtype ${dtype} is not supported by @balora/safetensors` : `unknown dtype ${quote(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every(isSize)) return bad("shape must be an array of non-negative integers");
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSize)) {
    return bad("data_offsets must be [begin, end], two non-negative integers");
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) bad(`data_offsets [${begin},${end}]: end is before begin`);
  const numel = numelOf(shape);
  const expected = numel === undefined ? undefined : numel * bytesPerElement(dtype);
  if (expected === undefined || expected !== end - begin) {
    bad(`${dtype} ${fmtShape(shape)} needs ${expected ?? "too many"} bytes but data_offsets [${begin},${end}] hold ${end - begin}`);
  }
  return { name, dtype, shape, dataOffsets: [begin, end] };
}

/** Sorted by offset, tensors must tile [0, dataLength) exactly: no overlap, no hole, nothing after. */
function checkLayout(tensors: TensorInfo[], dataLength: number, fail: (reason: string) => never): void {
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let position = 0;
  let previous: TensorInfo | undefined;
  for (const t of tensors) {
    const [begin, end] = t.dataOffsets;
    const at = `tensor ${quote(t.name)}: data_offsets [${begin},${end}]`;
    if (end > dataLength) fail(`${at} run past the end of the data (${dataLength} bytes): truncated file?`);
    if (begin < position) fail(`${at} overlap tensor ${quote(previous!.name)} [${previous!.dataOffsets.join(",")}]`);
    if (begin > position) fail(`${at} leave a hole: bytes [${position},${begin}) belong to no tensor`);
    position = end;
    previous = t;
  }
  if (position < dataLength) fail(`${dataLength - position} trailing bytes after the last tensor`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isSize(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

// ---- writing ----

/** What the writer knows about a tensor before its bytes exist. */
export interface TensorLayout {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  byteLength: number;
}

const utf8 = new TextEncoder();

/**
 * Orders tensors like the reference writer (descending dtype rank, then name compared as UTF-8
 * bytes, as Rust's `String::cmp` does) and gives each its offsets, packed from 0.
 */
export function layoutTensors(tensors: readonly TensorLayout[]): TensorInfo[] {
  const keyed = tensors.map((t) => ({ t, rank: writerRank(t.dtype), nameBytes: utf8.encode(t.name) }));
  keyed.sort((a, b) => b.rank - a.rank || compareBytes(a.nameBytes, b.nameBytes));
  let offset = 0;
  return keyed.map(({ t }) => {
    const begin = offset;
    offset += t.byteLength;
    return { name: t.name, dtype: t.dtype, shape: t.shape, dataOffsets: [begin, offset] };
  });
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/**
 * The 8-byte length plus the header, as serde_json writes the reference `Metadata`: compact,
 * `__metadata__` first when given, then tensors in data order with keys dtype, shape,
 * data_offsets; space-padded so that N is a multiple of 8 (every tensor then starts aligned).
 */
export function encodeHeader(
  tensors: readonly TensorInfo[],
  metadata: Readonly<Record<string, string>> | undefined,
  file: string,
): Uint8Array {
  const entries: string[] = [];
  if (metadata !== undefined) {
    const pairs = Object.entries(metadata).map(([k, v]) => {
      if (typeof v !== "string") throw new SafetensorsFormatError(file, `metadata value of ${quote(k)} is ${describe(v)}, not a string`);
      return `${jsonString(k, file)}:${jsonString(v, file)}`;
    });
    entries.push(`"__metadata__":{${pairs.join(",")}}`);
  }
  for (const t of tensors) {
    const info = `{"dtype":"${t.dtype}","shape":[${t.shape.join(",")}],"data_offsets":[${t.dataOffsets.join(",")}]}`;
    entries.push(`${jsonString(t.name, file)}:${info}`);
  }
  const json = utf8.encode(`{${entries.join(",")}}`);
  const n = Math.ceil(json.length / 8) * 8;
  if (n > MAX_HEADER_BYTES) throw new SafetensorsFormatError(file, `header would be ${n} bytes, over the ${MAX_HEADER_BYTES}-byte limit`);
  const out = new Uint8Array(HEADER_LENGTH_BYTES + n).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, HEADER_LENGTH_BYTES);
  return out;
}

/** JSON.stringify escapes exactly like serde_json for well-formed strings; lone surrogates have no UTF-8. */
function jsonString(s: string, file: string): string {
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s)) {
    throw new SafetensorsFormatError(file, `name ${quote(s)} has a lone UTF-16 surrogate, which UTF-8 cannot encode`);
  }
  return JSON.stringify(s);
}
