// The browser's side of @balora/safetensors: strings are URLs (resolved against the page), files come
// through fetch, Blobs and memory; writers that need a file system say what to use instead.
import { type Checkpoint, type SaveCheckpointOptions, type SavedCheckpoint, openCheckpointWith } from "./checkpoint.js";
import { urlDirectory, urlSource } from "./fetch.js";
import { type SafetensorsFile, openSafetensorsWith } from "./file.js";
import {
  type CheckpointInput,
  type Directory,
  type DirectoryInput,
  type FileInput,
  type FilesToWrite,
  type Platform,
  resolveDirectory,
  urlNamesDirectory,
} from "./source.js";
import type { TensorsToWrite, WriteOptions } from "./writer.js";
import type { WriteBytes } from "./atomic-file.js";

/** A string as a URL, relative ones against the page (or worker) location. */
function toUrl(location: string | URL): URL {
  if (typeof location !== "string") return location;
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  try {
    return new URL(location, base);
  } catch {
    throw new TypeError(
      `${JSON.stringify(location)} is not a URL and there is no page location to resolve it against; ` +
        "pass an absolute URL, a File, an ArrayBuffer or a Map of files",
    );
  }
}

const web: Platform = {
  file: (location) => urlSource(toUrl(location)),
  directory: (location) => urlDirectory(toUrl(location)),
  isDirectory: async (location) => urlNamesDirectory(toUrl(location)),
};

export function openSafetensors(input: FileInput): Promise<SafetensorsFile> {
  return openSafetensorsWith(input, web);
}

export function openCheckpoint(input: CheckpointInput): Promise<Checkpoint> {
  return openCheckpointWith(input, web);
}

export function openDirectory(input: DirectoryInput): Directory {
  return resolveDirectory(input, web);
}

/** The error for a Node-only writer called in a browser. */
function noFileSystem(call: string, instead: string): Error {
  return new Error(`${call} writes files, and a browser has no file system (the browser build of @balora/safetensors); ${instead}`);
}

export async function writeSafetensors(path: string, _tensors: TensorsToWrite, _options?: WriteOptions): Promise<void> {
  throw noFileSystem(`writeSafetensors(${JSON.stringify(path)})`, "serializeSafetensors(tensors) returns the file's bytes");
}

export async function saveCheckpoint(dir: string, _tensors: TensorsToWrite, _options?: SaveCheckpointOptions): Promise<SavedCheckpoint> {
  throw noFileSystem(`saveCheckpoint(${JSON.stringify(dir)})`, "serializeSafetensors(tensors) returns a file's bytes");
}

export async function writeFiles(dir: string, _files: FilesToWrite, _options?: { subdirectory?: string }): Promise<string> {
  throw noFileSystem(`writeFiles(${JSON.stringify(dir)})`, "offer the bytes as a download (a Blob and an <a download> link) instead");
}

export async function writeFileAtomically(path: string, _produce: (write: WriteBytes) => Promise<void>): Promise<void> {
  throw noFileSystem(`writeFileAtomically(${JSON.stringify(path)})`, "keep the bytes in memory or offer them as a download");
}

export async function writeTextAtomically(path: string, _text: string): Promise<void> {
  throw noFileSystem(`writeTextAtomically(${JSON.stringify(path)})`, "keep the text in memory or offer it as a download");
}
