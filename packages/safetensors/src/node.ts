// Node's side of @balora/safetensors: paths and directories on disk through node:fs (positional
// reads, one tensor at a time) and atomic writes. Only the Node entry (index.ts) imports this file.
import { type FileHandle, mkdir, open, readFile, readdir, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomically, writeTextAtomically } from "./atomic-file.js";
import {
  type Checkpoint,
  INDEX_FILE_NAME,
  type SaveCheckpointOptions,
  type SavedCheckpoint,
  isCheckpointFile,
  openCheckpointWith,
  planCheckpoint,
} from "./checkpoint.js";
import { SafetensorsFormatError } from "./errors.js";
import { urlDirectory, urlSource } from "./fetch.js";
import { type SafetensorsFile, openSafetensorsWith } from "./file.js";
import {
  type ByteSource,
  type CheckpointInput,
  type Directory,
  type DirectoryInput,
  type FileInput,
  type FilesToWrite,
  type Platform,
  resolveDirectory,
  urlNamesDirectory,
} from "./source.js";
import { type TensorsToWrite, type WriteOptions, prepareSafetensors } from "./writer.js";

/** A string is a path; a `file:` URL too; any other URL is fetched. */
function localPath(location: string | URL): string | undefined {
  if (typeof location === "string") return location;
  return location.protocol === "file:" ? fileURLToPath(location) : undefined;
}

const node: Platform = {
  async file(location) {
    const path = localPath(location);
    return path === undefined ? urlSource(location) : fileSource(path);
  },
  directory(location) {
    const path = localPath(location);
    return path === undefined ? urlDirectory(location) : diskDirectory(path);
  },
  async isDirectory(location) {
    const path = localPath(location);
    return path === undefined ? urlNamesDirectory(new URL(location)) : (await stat(path)).isDirectory();
  },
};

/** Opens a .safetensors file (a path, URL, bytes, Blob or ByteSource) and checks its header; tensors are read later, one at a time. */
export function openSafetensors(input: FileInput): Promise<SafetensorsFile> {
  return openSafetensorsWith(input, node);
}

/**
 * Opens a checkpoint: a .safetensors file, or a directory (path, URL, Map of files, ...) with
 * `model.safetensors` (preferred, as transformers does) or `model.safetensors.index.json`, of which
 * only `weight_map` is read.
 */
export function openCheckpoint(input: CheckpointInput): Promise<Checkpoint> {
  return openCheckpointWith(input, node);
}

/** A directory to read files from: a path, a URL, files in memory (Map, object, File[]), or a Directory. */
export function openDirectory(input: DirectoryInput): Directory {
  return resolveDirectory(input, node);
}

async function fileSource(path: string): Promise<ByteSource> {
  const handle = await open(path, "r");
  let size: number;
  try {
    size = (await handle.stat()).size;
  } catch (e) {
    await handle.close();
    throw e;
  }
  return handleSource(handle, size, path);
}

function handleSource(handle: FileHandle, size: number, path: string): ByteSource {
  let closed: Promise<void> | undefined;
  return {
    label: path,
    size,
    async read(position, length) {
      // Its own ArrayBuffer at offset 0, so typed-array views of it are always aligned.
      const buffer = Buffer.allocUnsafeSlow(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
        if (bytesRead === 0) {
          throw new SafetensorsFormatError(
            path,
            `file ended at byte ${position + filled} while reading bytes [${position},${position + length}): truncated while open?`,
          );
        }
        filled += bytesRead;
      }
      return buffer;
    },
    close: () => (closed ??= handle.close()),
  };
}

const NOT_THERE = new Set(["ENOENT", "ENOTDIR", "EISDIR"]);

function diskDirectory(path: string): Directory {
  const labelOf = (name: string) => join(path, name);
  return {
    label: path,
    labelOf,
    isDirectory: async () => (await stat(path).catch(() => undefined))?.isDirectory() ?? false,
    async read(name) {
      try {
        const b = await readFile(labelOf(name));
        return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      } catch (e) {
        if (NOT_THERE.has((e as NodeJS.ErrnoException).code ?? "")) return undefined;
        throw e;
      }
    },
    async open(name) {
      const file = labelOf(name);
      return (await stat(file).catch(() => undefined))?.isFile() ? fileSource(file) : undefined;
    },
  };
}

/**
 * Writes `tensors` to `path` as the reference writer (Python `save_file`) would, byte for byte.
 * The file appears complete or not at all: a temporary file is renamed into place at the end.
 */
export async function writeSafetensors(path: string, tensors: TensorsToWrite, options: WriteOptions = {}): Promise<void> {
  const file = prepareSafetensors(tensors, options, path);
  await writeFileAtomically(path, (write) => file.emit(write));
}

/**
 * Saves tensors into `dir` as `model.safetensors`, or as shards plus an index when they exceed
 * `maxShardSize`. Each file is written atomically; checkpoint files of an earlier save that the new
 * one does not replace are removed afterwards.
 */
export async function saveCheckpoint(dir: string, tensors: TensorsToWrite, options: SaveCheckpointOptions = {}): Promise<SavedCheckpoint> {
  const plan = planCheckpoint(dir, tensors, options);
  await mkdir(dir, { recursive: true });
  for (const file of plan.files) await writeSafetensors(join(dir, file.name), file.tensors, { metadata: file.metadata });
  const files = plan.files.map((f) => f.name);
  const written = [...files];
  if (plan.index !== undefined) {
    await writeTextAtomically(join(dir, INDEX_FILE_NAME), plan.index);
    written.push(INDEX_FILE_NAME);
  }
  for (const name of await readdir(dir)) {
    if (isCheckpointFile(name) && !written.includes(name)) await unlink(join(dir, name));
  }
  return { files, index: plan.index === undefined ? undefined : INDEX_FILE_NAME };
}

/**
 * Creates `dir/subdirectory` (with parents) and writes each file into it atomically, in order.
 * Returns the directory written: `dir`, or `join(dir, subdirectory)`.
 */
export async function writeFiles(dir: string, files: FilesToWrite, options: { subdirectory?: string } = {}): Promise<string> {
  const out = options.subdirectory === undefined ? dir : join(dir, options.subdirectory);
  await mkdir(out, { recursive: true });
  for (const [name, content] of files instanceof Map ? files : Object.entries(files)) {
    if (typeof content === "string") await writeTextAtomically(join(out, name), content);
    else await writeFileAtomically(join(out, name), (write) => write(content));
  }
  return out;
}
