// Writing a file so that readers only ever see the old file or the complete new one: bytes go to a
// temporary file in the same directory, which is synced and renamed over the target at the end.
import { randomBytes } from "node:crypto";
import { open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Appends bytes to the file being written. */
export type WriteBytes = (bytes: Uint8Array) => Promise<void>;

/**
 * Calls `produce` with a writer for a temporary file, then renames it to `path`. If anything
 * throws, the temporary file is removed, `path` is left as it was, and the error is rethrown.
 */
export async function writeFileAtomically(path: string, produce: (write: WriteBytes) => Promise<void>): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(temporary, "wx");
  try {
    try {
      await produce(async (bytes) => {
        for (let written = 0; written < bytes.byteLength; ) {
          written += (await handle.write(bytes, written, bytes.byteLength - written)).bytesWritten;
        }
      });
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (e) {
    await unlink(temporary).catch(() => {});
    throw e;
  }
}

/** Writes a text file atomically (UTF-8), e.g. a JSON config next to the tensors. */
export const writeTextAtomically = (path: string, text: string): Promise<void> =>
  writeFileAtomically(path, (write) => write(new TextEncoder().encode(text)));
