// Loading a model (and optionally a peft adapter) for a CLI command on the shared WebGPU backend,
// and writing HF model directories atomically with the source's tokenizer files.
import { cp, mkdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { loadAdapter } from "@balora/lora";
import { type LanguageModel, loadModel, saveModel } from "@balora/models";
import * as T from "@balora/tensor";
import { UsageError } from "./args.js";

export async function loadForCli(modelDir: string, adapterDir?: string): Promise<{ model: LanguageModel; backend: T.WebGPUBackend }> {
  const backend = await T.initWebGPU();
  const model = await loadModel(modelDir, { backend });
  if (adapterDir) await loadAdapter(model, adapterDir);
  return { model, backend };
}

/** Files of a model directory that are not weights or config: tokenizer and generation settings. */
const SIDE_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
  "generation_config.json",
  "chat_template.jinja",
];

export async function copySideFiles(from: string, to: string): Promise<void> {
  for (const f of SIDE_FILES) {
    try {
      await stat(join(from, f));
    } catch {
      continue;
    }
    await cp(join(from, f), join(to, f));
  }
}

/** Refuses to overwrite an existing --out. */
export async function requireFresh(out: string): Promise<void> {
  try {
    await stat(out);
  } catch {
    return;
  }
  throw new UsageError(`--out ${out} already exists; choose a new directory or remove it first`);
}

/**
 * Builds a directory under a temporary name beside `out` and renames it into place at the end, so a
 * failure never leaves a partial output.
 */
export async function buildDirAtomically(out: string, build: (tmp: string) => Promise<void>): Promise<void> {
  await requireFresh(out);
  const tmp = join(dirname(out), `.${basename(out)}.${process.pid}.tmp`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await build(tmp);
    await rename(tmp, out);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Writes `model` as an HF directory (config, safetensors, the source's tokenizer files) into `dir`. */
export async function writeModelDir(model: LanguageModel, sourceDir: string, dir: string): Promise<void> {
  await saveModel(model, dir);
  await copySideFiles(sourceDir, dir);
}
