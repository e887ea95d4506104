// Where every balora loader gets its bytes: one file with random access (bytes in memory, a Blob or
// File, a URL, a Node path) and directories of named files (a path, a base URL, a Map, a FileList).

/** Random access to the bytes of one file. */
export interface ByteSource {
  /** The file as messages name it: its path, URL or name. */
  readonly label: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Exactly `length` bytes from `position`; rejects when the file is shorter. */
  read(position: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** What is used of a Blob or File (a File from a directory picker also has webkitRelativePath). */
export interface BlobLike {
  readonly size: number;
  readonly name?: string;
  readonly webkitRelativePath?: string;
  slice(start?: number, end?: number): { arrayBuffer(): Promise<ArrayBuffer> };
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** What is used of a FileList (an `<input type="file" multiple>` or a dropped folder). */
export interface FileListLike {
  readonly length: number;
  item(index: number): BlobLike | null;
}

/** One file held in memory: its bytes, a Blob/File, or its text (written as UTF-8). */
export type FileData = ArrayBufferLike | ArrayBufferView | BlobLike | string;

/** Files to write by name: text (UTF-8) or bytes (writeFiles in Node; a download in a page). */
export type FilesToWrite = ReadonlyMap<string, string | Uint8Array> | Readonly<Record<string, string | Uint8Array>>;

/**
 * One file: a string (a path in Node, a URL in the browser), a URL (`file:` read from disk in Node,
 * anything else fetched), its bytes, a Blob/File, or a ByteSource of your own.
 */
export type FileInput = string | URL | ArrayBufferLike | ArrayBufferView | BlobLike | ByteSource;

/** Named files, read whole or opened for random access. Names are relative ("config.json"). */
export interface Directory {
  /** The directory as messages name it: its path, base URL, or a label for files in memory. */
  readonly label: string;
  /** A file in it as messages name it. */
  labelOf(name: string): string;
  /** false when the location is known not to be a directory (a Node path that is missing or a file). */
  isDirectory(): Promise<boolean>;
  /** The whole file, or undefined when it has no such file. */
  read(name: string): Promise<Uint8Array | undefined>;
  /** The file for random access, or undefined when it has no such file. */
  open(name: string): Promise<ByteSource | undefined>;
}

/**
 * A directory: a string (a path in Node, a base URL in the browser), a URL, a Map or plain object of
 * name → FileData, Files (a FileList or an array; a picked folder's common top folder is dropped from
 * the names), or a Directory of your own.
 */
export type DirectoryInput =
  | string
  | URL
  | Directory
  | ReadonlyMap<string, FileData>
  | Readonly<Record<string, FileData>>
  | FileListLike
  | readonly BlobLike[];

/** A checkpoint: one .safetensors file, or a directory holding one or shards with their index. */
export type CheckpointInput = FileInput | DirectoryInput;

/** @internal How an entry point turns strings and URLs into files and directories. */
export interface Platform {
  file(location: string | URL): Promise<ByteSource>;
  directory(location: string | URL): Directory;
  /** Whether a location names a directory rather than one file (openCheckpoint's choice). */
  isDirectory(location: string | URL): Promise<boolean>;
}

const utf8 = new TextEncoder();

const tag = (x: unknown): string => Object.prototype.toString.call(x);
const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null;
const isFunction = (x: unknown, key: string): boolean => isObject(x) && typeof x[key] === "function";

/** ArrayBuffer or SharedArrayBuffer, from this realm or another (an iframe, a worker's message). */
export const isArrayBuffer = (x: unknown): x is ArrayBufferLike =>
  tag(x) === "[object ArrayBuffer]" || tag(x) === "[object SharedArrayBuffer]";
export const isBlobLike = (x: unknown): x is BlobLike =>
  isFunction(x, "slice") && isFunction(x, "arrayBuffer") && typeof (x as BlobLike).size === "number";
export const isByteSource = (x: unknown): x is ByteSource =>
  isFunction(x, "read") && isFunction(x, "close") && typeof (x as ByteSource).size === "number";
export const isDirectory = (x: unknown): x is Directory =>
  isFunction(x, "read") && isFunction(x, "open") && isFunction(x, "labelOf") && isFunction(x, "isDirectory");
const isFileList = (x: unknown): x is FileListLike => isFunction(x, "item") && typeof (x as FileListLike).length === "number";
const isLocation = (x: unknown): x is string | URL => typeof x === "string" || x instanceof URL || tag(x) === "[object URL]";

/** A single file's input as opposed to a directory's (locations are neither until looked at). */
export const isFileContent = (x: unknown): x is ArrayBufferLike | ArrayBufferView | BlobLike | ByteSource =>
  isArrayBuffer(x) || ArrayBuffer.isView(x) || isBlobLike(x) || isByteSource(x);

/** Bytes in memory; reads are views of `bytes`. */
export function bytesSource(bytes: Uint8Array, label: string): ByteSource {
  return {
    label,
    size: bytes.byteLength,
    async read(position, length) {
      checkRange(label, bytes.byteLength, position, length);
      return bytes.subarray(position, position + length);
    },
    close: async () => {},
  };
}

/** A Blob or File; each read slices it (a File on disk is not read into memory whole). */
export function blobSource(blob: BlobLike, label = blob.name || "<blob>"): ByteSource {
  return {
    label,
    size: blob.size,
    async read(position, length) {
      checkRange(label, blob.size, position, length);
      const bytes = new Uint8Array(await blob.slice(position, position + length).arrayBuffer());
      if (bytes.byteLength !== length) throw new Error(`${label}: read ${bytes.byteLength} bytes at ${position}, expected ${length}`);
      return bytes;
    },
    close: async () => {},
  };
}

function checkRange(label: string, size: number, position: number, length: number): void {
  if (!(Number.isSafeInteger(position) && Number.isSafeInteger(length) && position >= 0 && length >= 0 && position + length <= size)) {
    throw new RangeError(`${label}: cannot read bytes [${position},${position + length}) of a ${size}-byte file`);
  }
}

/** Bytes as a Uint8Array view (no copy). */
function asBytes(data: ArrayBufferLike | ArrayBufferView): Uint8Array {
  return isArrayBuffer(data) ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A ByteSource for in-memory content: bytes, text or a Blob. */
function contentSource(data: FileData, label: string): ByteSource {
  if (typeof data === "string") return bytesSource(utf8.encode(data), label);
  return isBlobLike(data) ? blobSource(data, label) : bytesSource(asBytes(data), label);
}

/** The input as a ByteSource; strings and URLs go to the platform. */
export async function resolveFile(input: FileInput, platform: Platform): Promise<ByteSource> {
  if (isLocation(input)) return platform.file(input);
  if (isByteSource(input)) return input;
  if (isArrayBuffer(input) || ArrayBuffer.isView(input)) return bytesSource(asBytes(input), "<bytes>");
  if (isBlobLike(input)) return blobSource(input);
  throw new TypeError(
    `expected a file: a path or URL, an ArrayBuffer or Uint8Array, a Blob or File, or a ByteSource; got ${describe(input)}`,
  );
}

/** The input as a Directory; strings and URLs go to the platform. */
export function resolveDirectory(input: DirectoryInput, platform: Platform): Directory {
  if (isLocation(input)) return platform.directory(input);
  if (isDirectory(input)) return input;
  if (isFileList(input) || Array.isArray(input)) return filesDirectory(isFileList(input) ? listFiles(input) : (input as BlobLike[]));
  if (input instanceof Map || tag(input) === "[object Map]") return memoryDirectory(input as ReadonlyMap<string, FileData>);
  if (isObject(input) && !isFileContent(input)) return memoryDirectory(new Map(Object.entries(input as Record<string, FileData>)));
  throw new TypeError(
    "expected a directory: a path or URL, a Map or object of name → file content, a FileList or File[], or a Directory; " +
      `got ${describe(input)}`,
  );
}

function listFiles(list: FileListLike): BlobLike[] {
  const files: BlobLike[] = [];
  for (let i = 0; i < list.length; i++) files.push(list.item(i)!);
  return files;
}

/** Files by name; a picked folder's files are named by their path below the folder. */
function filesDirectory(files: readonly BlobLike[]): Directory {
  const paths = files.map((f, i) => {
    if (!isBlobLike(f)) throw new TypeError(`file ${i} of the list is ${describe(f)}, not a File or Blob`);
    return f.webkitRelativePath || f.name || "";
  });
  const top = paths[0]?.includes("/") ? paths[0].slice(0, paths[0].indexOf("/") + 1) : "";
  const common = top !== "" && paths.every((p) => p.startsWith(top));
  const entries = new Map<string, FileData>();
  files.forEach((f, i) => {
    const name = common ? paths[i].slice(top.length) : paths[i];
    if (name === "") throw new TypeError(`file ${i} of the list has no name; give files by name in a Map instead`);
    entries.set(name, f);
  });
  return memoryDirectory(entries, common ? top.slice(0, -1) : "<files>");
}

/** Files in memory by name ("config.json", "adapter/adapter_config.json"). */
function memoryDirectory(entries: ReadonlyMap<string, FileData>, label = "<memory>"): Directory {
  for (const [name, data] of entries) {
    if (!(typeof data === "string" || isArrayBuffer(data) || ArrayBuffer.isView(data) || isBlobLike(data))) {
      throw new TypeError(
        `${label}/${name}: the file is ${describe(data)}; give its bytes (ArrayBuffer, Uint8Array), a Blob/File, or its text`,
      );
    }
  }
  const labelOf = (name: string) => `${label}/${name}`;
  return {
    label,
    labelOf,
    isDirectory: async () => true,
    async read(name) {
      const data = entries.get(name);
      if (data === undefined) return undefined;
      if (typeof data === "string") return utf8.encode(data);
      return isBlobLike(data) ? new Uint8Array(await data.arrayBuffer()) : asBytes(data);
    },
    async open(name) {
      const data = entries.get(name);
      return data === undefined ? undefined : contentSource(data, labelOf(name));
    },
  };
}

/** A file's text (UTF-8), or undefined when the directory has no such file. */
export async function readText(directory: Directory, name: string): Promise<string | undefined> {
  const bytes = await directory.read(name);
  return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
}

/** A URL path names one file when it ends in .safetensors, else a directory. */
export const urlNamesDirectory = (url: URL): boolean => !/\.safetensors$/i.test(url.pathname);

export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return `an object (${tag(value).slice(8, -1)})`;
  return `a ${typeof value}`;
}
