// Input paths checked before any work, each with one line naming the flag and the fix: a missing
// path, a directory where a file belongs (or the reverse), a special file, no permission.
import type { Stats } from "node:fs";
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { CliError } from "./args.js";

async function statInput(flag: string, path: string): Promise<Stats> {
  try {
    return await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new CliError(`${flag} ${path}: not found`);
    if (code === "ENOTDIR") throw new CliError(`${flag} ${path}: not found (a part of the path is a file)`);
    if (code === "EACCES") throw new CliError(`${flag} ${path}: permission denied`);
    if (code === "ELOOP") throw new CliError(`${flag} ${path}: too many levels of symbolic links`);
    throw e;
  }
}

async function readable(flag: string, path: string): Promise<void> {
  try {
    await access(path, constants.R_OK);
  } catch {
    throw new CliError(`${flag} ${path}: permission denied`);
  }
}

/** Requires a directory (a model or adapter directory, `what` names it in the message). */
export async function requireDir(flag: string, path: string, what: string): Promise<void> {
  const st = await statInput(flag, path);
  if (!st.isDirectory()) throw new CliError(`${flag} ${path} is not a directory; ${flag} takes ${what}`);
  await readable(flag, path);
}

/** Requires a regular file (`what` names what it should be, e.g. "a .safetensors file"). */
export async function requireFile(flag: string, path: string, what: string): Promise<void> {
  const st = await statInput(flag, path);
  if (st.isDirectory()) throw new CliError(`${flag} ${path} is a directory; ${flag} takes ${what}`);
  if (!st.isFile()) throw new CliError(`${flag} ${path} is not a regular file; ${flag} takes ${what}`);
  await readable(flag, path);
}
