// File helpers shared by commands: outputs are written to a temporary name and renamed, so a
// failed command never leaves a partial file behind.
import { rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** A temp path beside `target` (same directory, so rename is atomic). */
export const tempPathFor = (target: string): string => join(dirname(target), `.${basename(target)}.${process.pid}.${Date.now()}.tmp`);

/** Runs `write(tmp)` then renames tmp to `target`; removes tmp on failure. */
export async function writeAtomically(target: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = tempPathFor(target);
  try {
    await write(tmp);
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true, recursive: true });
    throw e;
  }
}

export const writeTextAtomically = (target: string, text: string): Promise<void> => writeAtomically(target, (tmp) => writeFile(tmp, text));
