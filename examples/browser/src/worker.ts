// The training worker: WebGPU (navigator.gpu in the worker), the bundled model and data fetched from the
// site itself, BA-LoRA steps posted one row at a time so the page only draws; a new start ends the old run.
import { parseRecords, type StepRow } from "@balora/ba-lora";
import * as T from "@balora/tensor";
import type { FromWorker, ToWorker } from "./protocol.js";
import { startSession } from "./session.js";
import { selectRows, trainSettings } from "./settings.js";

/** The files `loadModel` and `Tokenizer.fromDir` read, as copied into the site's model/ folder. */
export const MODEL_FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"];

const post = (m: FromWorker) => (self as unknown as Worker).postMessage(m);
let current = 0;

async function fetchBytes(url: URL): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url.pathname}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

let backend: Promise<T.WebGPUBackend> | null = null;
let files: Promise<{ model: Map<string, Uint8Array>; data: string }> | null = null;

async function run(msg: ToWorker): Promise<void> {
  const { id } = msg;
  const status = (text: string) => post({ type: "status", id, text });
  if (!(navigator as { gpu?: unknown }).gpu) {
    post({ type: "no-webgpu", id, reason: "this browser exposes no navigator.gpu to workers" });
    return;
  }
  status("requesting a WebGPU device");
  backend ??= T.initWebGPU();
  let gpu: T.WebGPUBackend;
  try {
    gpu = await backend;
  } catch (e) {
    backend = null;
    if (e instanceof T.DeviceError) post({ type: "no-webgpu", id, reason: "navigator.gpu found no adapter" });
    else throw e;
    return;
  }
  status("fetching the tiny model and its data");
  const base = new URL(msg.assets);
  files ??= (async () => {
    const entries = await Promise.all(MODEL_FILES.map(async (n) => [n, await fetchBytes(new URL(`model/${n}`, base))] as const));
    const data = new TextDecoder().decode(await fetchBytes(new URL("data/train.jsonl", base)));
    return { model: new Map(entries), data };
  })();
  const { model, data } = await files;
  const settings = trainSettings(msg.run);
  const records = selectRows(parseRecords(data, "train.jsonl"), msg.run.data);
  status(`initialising the adapter (${settings.init}, r ${settings.r})`);
  const session = await startSession(model, records, settings, gpu, (line) => status(line));
  try {
    if (id !== current) return;
    post({
      type: "ready",
      id,
      adapter: settings.init,
      device: gpu.description,
      trainable: session.trainable,
      examples: session.examples,
      terms: session.trainer.loss.config.terms.map((t) => t.name),
    });
    status("generating before training");
    post({ type: "generated", id, when: "before", text: await session.generate() });
    const t0 = performance.now();
    while (!session.trainer.done) {
      if (id !== current) return;
      const row: StepRow = await session.step();
      post({ type: "step", id, row });
    }
    status("generating after training");
    post({ type: "generated", id, when: "after", text: await session.generate() });
    const adapter = await session.adapter();
    const config = new TextEncoder().encode(adapter["adapter_config.json"]);
    const weights = adapter["adapter_model.safetensors"];
    const seconds = (performance.now() - t0) / 1000;
    post({
      type: "done",
      id,
      seconds,
      files: [
        { name: "adapter_config.json", bytes: config },
        { name: "adapter_model.safetensors", bytes: weights },
      ],
    });
  } finally {
    session.dispose();
  }
}

/** Runs one after another: a start while a run is going ends that run after its current step. */
let queue: Promise<void> = Promise.resolve();
self.onmessage = (e: MessageEvent<ToWorker>) => {
  const msg = e.data;
  current = msg.id;
  queue = queue.then(() =>
    run(msg).catch(async (err: unknown) => {
      post({ type: "error", id: msg.id, message: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
      if (err instanceof T.DeviceError) {
        // a lost device: the next start asks for a new one
        backend = null;
        await T.releaseWebGPU().catch(() => {});
      }
    }),
  );
};
