// A checkpoint as files in memory (the adapter in peft's format, AdamW's state, trainer_state.json, the
// metrics so far) and back: the CLI writes them atomically, a page can offer them as downloads.
import { adapterFiles, loadAdapterWeights, type SaveAdapterOptions } from "@balora/lora";
import {
  type DirectoryInput,
  openDirectory,
  openSafetensors,
  readText,
  serializeSafetensors,
  type TensorToWrite,
} from "@balora/safetensors";
import type { LanguageModel } from "@balora/models";
import * as T from "@balora/tensor";
import { type Trainer, TrainingError, type TrainerState } from "./trainer.js";

export const TRAINER_STATE_FILE = "trainer_state.json";
export const OPTIMIZER_FILE = "optimizer.safetensors";
export const METRICS_FILE = "metrics.jsonl";
/** Written last: a checkpoint without it was cut short and is never resumed from. */
export const COMPLETE_FILE = "checkpoint_complete.json";

/** The files of a checkpoint at the trainer's current step, the completeness marker last (insertion order). */
export async function checkpointFiles(
  trainer: Trainer<LanguageModel>,
  metrics: string,
  adapter: SaveAdapterOptions = {},
): Promise<Map<string, string | Uint8Array>> {
  const files = new Map<string, string | Uint8Array>(Object.entries(await adapterFiles(trainer.model, adapter)));
  const sd = trainer.optimizer.stateDict();
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, t] of Object.entries(sd.tensors)) {
    tensors.set(name, { dtype: "F32", shape: t.shape, data: Float32Array.from(await t.data()) });
    t.dispose();
  }
  files.set(OPTIMIZER_FILE, await serializeSafetensors(tensors, { metadata: sd.metadata }));
  const state = trainer.state();
  files.set(TRAINER_STATE_FILE, `${JSON.stringify(state, null, 2)}\n`);
  files.set(METRICS_FILE, metrics);
  files.set(COMPLETE_FILE, `${JSON.stringify({ global_step: state.global_step, files: [...files.keys()] })}\n`);
  return files;
}

/** Reads a checkpoint's trainer_state.json (and checks it is complete). */
export async function readCheckpointState(dir: DirectoryInput): Promise<TrainerState> {
  const d = openDirectory(dir);
  if ((await readText(d, COMPLETE_FILE)) === undefined)
    throw new TrainingError(`${d.label}: the checkpoint is incomplete (no ${COMPLETE_FILE}; it was being written when the run stopped)`);
  const text = await readText(d, TRAINER_STATE_FILE);
  if (text === undefined) throw new TrainingError(`${d.labelOf(TRAINER_STATE_FILE)}: not found`);
  try {
    return JSON.parse(text) as TrainerState;
  } catch (e) {
    throw new TrainingError(`${d.labelOf(TRAINER_STATE_FILE)}: invalid JSON (${(e as Error).message})`);
  }
}

/** Restores a checkpoint into `trainer`: adapter weights, AdamW state, step and counters; returns its metrics text. */
export async function restoreCheckpoint(trainer: Trainer<LanguageModel>, dir: DirectoryInput): Promise<string> {
  const d = openDirectory(dir);
  const state = await readCheckpointState(d);
  await loadAdapterWeights(trainer.model, d);
  const handle = await d.open(OPTIMIZER_FILE);
  if (!handle) throw new TrainingError(`${d.labelOf(OPTIMIZER_FILE)}: not found`);
  const file = await openSafetensors(handle);
  const tensors: Record<string, T.Tensor> = {};
  try {
    const backend = trainer.optimizer.params[0].backend;
    for (const name of file.names) {
      const t = await file.readTensor(name);
      tensors[name] = T.tensorFromBytes(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), "f32", t.shape, { backend });
    }
    trainer.optimizer.loadStateDict({ tensors, metadata: { ...(file.metadata ?? {}) } });
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
    await file.close();
  }
  trainer.restore(state);
  return (await readText(d, METRICS_FILE)) ?? "";
}
