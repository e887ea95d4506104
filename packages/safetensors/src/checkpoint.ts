// Checkpoint directories as Hugging Face lays them out: one `model.safetensors`, or shards
// `model-00001-of-0000N.safetensors` plus `model.safetensors.index.json` (huggingface_hub rules).
import { mkdir, readFile, readdir, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { writeFileAtomically } from "./atomic-file.js";
import { SafetensorsFormatError, quote } from "./errors.js";
import { type SafetensorsFile, type Tensor, openSafetensors } from "./file.js";
import type { TensorInfo } from "./header.js";
import { type OrderedJson, findDuplicateKeys, pythonJsonDump } from "./json.js";
import { type TensorToWrite, type TensorsToWrite, planTensors, writeSafetensors } from "./writer.js";

export const SINGLE_FILE_NAME = "model.safetensors";
export const INDEX_FILE_NAME = "model.safetensors.index.json";
/** huggingface_hub's MAX_SHARD_SIZE ("5GB", decimal). */
export const DEFAULT_MAX_SHARD_SIZE = 5_000_000_000;
/** Files a save replaces (huggingface_hub's clean-up pattern for "model{suffix}.safetensors"). */
const CHECKPOINT_FILE = /^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$/;

/** `model-00001-of-00003.safetensors`: 1-based, five digits. */
export function shardFileName(index: number, count: number): string {
  const five = (i: number) => String(i).padStart(5, "0");
  return `model-${five(index)}-of-${five(count)}.safetensors`;
}

/**
 * Groups tensors into shards like huggingface_hub's split_state_dict_into_shards_factory: in key
 * order, a shard closes when the next tensor would take it past `maxShardSize`; a tensor larger
 * than the limit becomes a shard of its own at once (so shards can come out of key order).
 */
export function planShards<T extends { byteLength: number }>(tensors: readonly T[], maxShardSize: number): T[][] {
  const shards: T[][] = [];
  let current: T[] = [];
  let currentSize = 0;
  for (const t of tensors) {
    if (t.byteLength > maxShardSize) {
      shards.push([t]);
      continue;
    }
    if (currentSize + t.byteLength > maxShardSize) {
      shards.push(current);
      current = [];
      currentSize = 0;
    }
    current.push(t);
    currentSize += t.byteLength;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

export interface SaveCheckpointOptions {
  /** Bytes per shard (a number, or "5GB", "256MB", ... in decimal units). Default 5 GB. */
  maxShardSize?: number | string;
  /**
   * Extra metadata. Every file's `__metadata__` is {"format": "pt"}; like huggingface_hub, a
   * single file also gets these keys, a sharded checkpoint puts them in the index's metadata.
   */
  metadata?: Readonly<Record<string, string>>;
}

export interface SavedCheckpoint {
  /** File names written, in shard order. */
  files: string[];
  /** The index file name when the checkpoint is sharded. */
  index?: string;
}

/**
 * Saves tensors into `dir` as `model.safetensors`, or as shards plus an index when they exceed
 * `maxShardSize`. Each file is written atomically; checkpoint files of an earlier save that the new
 * one does not replace are removed afterwards.
 */
export async function saveCheckpoint(dir: string, tensors: TensorsToWrite, options: SaveCheckpointOptions = {}): Promise<SavedCheckpoint> {
  const maxShardSize = parseShardSize(options.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE);
  for (const [key, value] of Object.entries(options.metadata ?? {})) {
    if (typeof value !== "string") throw new SafetensorsFormatError(dir, `metadata value of ${quote(key)} is not a string`);
  }
  const planned = planTensors(tensors, dir);
  const shards = planShards(planned, maxShardSize);
  const sharded = shards.length > 1;
  const files = shards.map((_, i) => (sharded ? shardFileName(i + 1, shards.length) : SINGLE_FILE_NAME));
  const fileMetadata = sharded ? { format: "pt" } : { format: "pt", ...options.metadata };

  await mkdir(dir, { recursive: true });
  for (const [i, shard] of shards.entries()) {
    const shardTensors = new Map<string, TensorToWrite>(shard.map((t) => [t.name, t.source]));
    await writeSafetensors(join(dir, files[i]), shardTensors, { metadata: fileMetadata });
  }
  const written = [...files];
  let index: string | undefined;
  if (sharded) {
    const totalSize = planned.reduce((sum, t) => sum + t.byteLength, 0);
    const metadata = new Map<string, OrderedJson>([["total_size", totalSize], ...Object.entries(options.metadata ?? {})]);
    const weightMap = new Map<string, OrderedJson>(shards.flatMap((shard, i) => shard.map((t) => [t.name, files[i]] as const)));
    const text = pythonJsonDump(
      new Map([
        ["metadata", metadata],
        ["weight_map", weightMap],
      ]),
    );
    await writeFileAtomically(join(dir, INDEX_FILE_NAME), (write) => write(new TextEncoder().encode(text)));
    index = INDEX_FILE_NAME;
    written.push(index);
  }
  for (const name of await readdir(dir)) {
    if (CHECKPOINT_FILE.test(name) && !written.includes(name)) await unlink(join(dir, name));
  }
  return { files, index };
}

const SIZE_UNITS: Record<string, number> = { KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };

/** A byte count, or "5GB"-style text as huggingface_hub's parse_size_to_int reads it. */
function parseShardSize(size: number | string): number {
  let bytes = size;
  if (typeof size === "string") {
    const match = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]B)\s*$/i.exec(size);
    bytes = match ? Math.trunc(Number(match[1]) * SIZE_UNITS[match[2].toUpperCase()]) : Number.NaN;
  }
  if (typeof bytes !== "number" || !Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new RangeError(`maxShardSize must be a positive number of bytes or like "5GB", got ${JSON.stringify(size)}`);
  }
  return bytes;
}

/** A checkpoint opened for reading: the tensors of one file or of all shards, read one at a time. */
export class Checkpoint implements AsyncIterable<Tensor> {
  /** Tensor names, shard by shard, in data order within each shard. */
  readonly names: readonly string[];

  private constructor(
    /** The files, in the order of `names`. */
    readonly files: readonly SafetensorsFile[],
    private readonly fileOf: ReadonlyMap<string, SafetensorsFile>,
  ) {
    this.names = files.flatMap((f) => f.names.filter((name) => fileOf.get(name) === f));
  }

  /** @internal */
  static create(files: SafetensorsFile[], fileOf: Map<string, SafetensorsFile>): Checkpoint {
    return new Checkpoint(files, fileOf);
  }

  has(name: string): boolean {
    return this.fileOf.has(name);
  }

  /** The header entry of a tensor; throws RangeError for an unknown name. */
  info(name: string): TensorInfo {
    return this.file(name).info(name);
  }

  readTensor(name: string): Promise<Tensor> {
    return this.file(name).readTensor(name);
  }

  /** Tensors one at a time, each file read front to back. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Tensor> {
    for (const name of this.names) yield await this.readTensor(name);
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }

  private file(name: string): SafetensorsFile {
    const file = this.fileOf.get(name);
    if (!file) throw new RangeError(`checkpoint has no tensor named ${quote(name)}`);
    return file;
  }
}

/**
 * Opens a checkpoint: a .safetensors file, or a directory with `model.safetensors` (preferred, as
 * transformers does) or `model.safetensors.index.json`, of which only `weight_map` is read.
 */
export async function openCheckpoint(path: string): Promise<Checkpoint> {
  if (!(await stat(path)).isDirectory()) return single(await openSafetensors(path));
  if (await isFile(join(path, SINGLE_FILE_NAME))) return single(await openSafetensors(join(path, SINGLE_FILE_NAME)));
  const indexPath = join(path, INDEX_FILE_NAME);
  if (!(await isFile(indexPath))) {
    throw new SafetensorsFormatError(path, `no checkpoint here: neither ${SINGLE_FILE_NAME} nor ${INDEX_FILE_NAME}`);
  }
  const weightMap = parseWeightMap(await readFile(indexPath, "utf8"), indexPath);
  const shardNames = [...new Set(weightMap.values())].sort();
  const files: SafetensorsFile[] = [];
  try {
    for (const shard of shardNames) {
      if (!(await isFile(join(path, shard)))) {
        throw new SafetensorsFormatError(indexPath, `weight_map names shard ${quote(shard)}, which is missing`);
      }
      files.push(await openSafetensors(join(path, shard)));
    }
    const byShard = new Map(files.map((f) => [basename(f.path), f]));
    const fileOf = new Map<string, SafetensorsFile>();
    for (const [tensor, shard] of weightMap) {
      const file = byShard.get(shard)!;
      if (!file.has(tensor))
        throw new SafetensorsFormatError(indexPath, `weight_map puts ${quote(tensor)} in ${quote(shard)}, which has no such tensor`);
      fileOf.set(tensor, file);
    }
    return Checkpoint.create(files, fileOf);
  } catch (e) {
    await Promise.all(files.map((f) => f.close()));
    throw e;
  }
}

function single(file: SafetensorsFile): Checkpoint {
  return Checkpoint.create([file], new Map(file.names.map((name) => [name, file])));
}

/** `weight_map` of an index: tensor name -> shard file name in the same directory. */
function parseWeightMap(text: string, indexPath: string): Map<string, string> {
  const fail = (reason: string): never => {
    throw new SafetensorsFormatError(indexPath, reason);
  };
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (e) {
    return fail(`index is not valid JSON (${(e as Error).message})`);
  }
  if (typeof index !== "object" || index === null || Array.isArray(index)) return fail("index is not a JSON object");
  const weightMap = (index as Record<string, unknown>).weight_map;
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
    return fail("index has no weight_map object");
  }
  for (const { key, path } of findDuplicateKeys(text)) {
    if (path.length === 0 && key === "weight_map") fail("index has two weight_map keys");
    if (path.length === 1 && path[0] === "weight_map") fail(`weight_map lists tensor ${quote(key)} twice`);
  }
  const entries = Object.entries(weightMap as Record<string, unknown>);
  for (const [tensor, file] of entries) {
    if (typeof file !== "string") fail(`weight_map value of ${quote(tensor)} is not a string`);
    const name = file as string;
    if (name === "" || name === "." || name === ".." || basename(name) !== name || dirname(name) !== "." || name.includes("\\")) {
      fail(`weight_map value ${quote(name)} of ${quote(tensor)} is not a file name in the index's directory`);
    }
  }
  return new Map(entries as [string, string][]);
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}
