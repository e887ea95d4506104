// Checkpoint directories as Hugging Face lays them out: one `model.safetensors`, or shards
// `model-00001-of-0000N.safetensors` plus `model.safetensors.index.json` (huggingface_hub rules).
import { SafetensorsFormatError, quote } from "./errors.js";
import { SafetensorsFile, type Tensor } from "./file.js";
import type { TensorInfo } from "./header.js";
import { type OrderedJson, findDuplicateKeys, pythonJsonDump } from "./json.js";
import {
  type CheckpointInput,
  type Directory,
  type DirectoryInput,
  type Platform,
  isFileContent,
  readText,
  resolveDirectory,
  resolveFile,
} from "./source.js";
import { type TensorToWrite, type TensorsToWrite, planTensors } from "./writer.js";

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

/** @internal What a save writes: each file's tensors in order, and the index text when sharded. */
export interface CheckpointPlan {
  files: { name: string; tensors: Map<string, TensorToWrite>; metadata: Record<string, string> }[];
  index?: string;
}

/** @internal Shards and index of a save, checked before anything is written (`dir` names it in errors). */
export function planCheckpoint(dir: string, tensors: TensorsToWrite, options: SaveCheckpointOptions): CheckpointPlan {
  const maxShardSize = parseShardSize(options.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE);
  for (const [key, value] of Object.entries(options.metadata ?? {})) {
    if (typeof value !== "string") throw new SafetensorsFormatError(dir, `metadata value of ${quote(key)} is not a string`);
  }
  const planned = planTensors(tensors, dir);
  const shards = planShards(planned, maxShardSize);
  const sharded = shards.length > 1;
  const names = shards.map((_, i) => (sharded ? shardFileName(i + 1, shards.length) : SINGLE_FILE_NAME));
  const metadata = sharded ? { format: "pt" } : { format: "pt", ...options.metadata };
  const files = shards.map((shard, i) => ({ name: names[i], tensors: new Map(shard.map((t) => [t.name, t.source])), metadata }));
  if (!sharded) return { files };
  const totalSize = planned.reduce((sum, t) => sum + t.byteLength, 0);
  const indexMetadata = new Map<string, OrderedJson>([["total_size", totalSize], ...Object.entries(options.metadata ?? {})]);
  const weightMap = new Map<string, OrderedJson>(shards.flatMap((shard, i) => shard.map((t) => [t.name, names[i]] as const)));
  const index = pythonJsonDump(
    new Map([
      ["metadata", indexMetadata],
      ["weight_map", weightMap],
    ]),
  );
  return { files, index };
}

/** @internal Files a save replaces (huggingface_hub's clean-up pattern for "model{suffix}.safetensors"). */
export const isCheckpointFile = (name: string): boolean => CHECKPOINT_FILE.test(name);

const SIZE_UNITS: Record<string, number> = { KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };

/** A byte count, or "5GB"-style text as huggingface_hub's parse_size_to_int reads it. */
export function parseShardSize(size: number | string): number {
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
export async function openCheckpointWith(input: CheckpointInput, platform: Platform): Promise<Checkpoint> {
  if (typeof input === "string" || input instanceof URL) {
    if (await platform.isDirectory(input)) return openCheckpointIn(platform.directory(input));
    const source = await platform.file(input);
    return single(await SafetensorsFile.load(source, source.label));
  }
  if (isFileContent(input)) {
    const source = await resolveFile(input, platform);
    return single(await SafetensorsFile.load(source, source.label));
  }
  return openCheckpointIn(resolveDirectory(input as DirectoryInput, platform));
}

async function openCheckpointIn(dir: Directory): Promise<Checkpoint> {
  const singleFile = await dir.open(SINGLE_FILE_NAME);
  if (singleFile) return single(await SafetensorsFile.load(singleFile, singleFile.label));
  const indexPath = dir.labelOf(INDEX_FILE_NAME);
  const indexText = await readText(dir, INDEX_FILE_NAME);
  if (indexText === undefined) {
    throw new SafetensorsFormatError(dir.label, `no checkpoint here: neither ${SINGLE_FILE_NAME} nor ${INDEX_FILE_NAME}`);
  }
  const weightMap = parseWeightMap(indexText, indexPath);
  const shardNames = [...new Set(weightMap.values())].sort();
  const files: SafetensorsFile[] = [];
  try {
    const byShard = new Map<string, SafetensorsFile>();
    for (const shard of shardNames) {
      const source = await dir.open(shard);
      if (!source) throw new SafetensorsFormatError(indexPath, `weight_map names shard ${quote(shard)}, which is missing`);
      const file = await SafetensorsFile.load(source, source.label);
      files.push(file);
      byShard.set(shard, file);
    }
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
    if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\\")) {
      fail(`weight_map value ${quote(name)} of ${quote(tensor)} is not a file name in the index's directory`);
    }
  }
  return new Map(entries as [string, string][]);
}
