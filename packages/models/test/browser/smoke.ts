// What a web page does with balora, run from the browser bundle (test/browser-bundle.test.ts bundles
// this file with Vite's browser conditions): models, tokenizers and adapters from Files and memory.
import {
  adapterFiles,
  type AdapterVariant,
  getVariant,
  loadAdapter,
  readAdapterConfig,
  registeredVariants,
  registerVariant,
} from "@balora/lora";
import { type LanguageModel, loadModel, readConfig, Tokenizer } from "@balora/models";
import { type FileData, openCheckpoint } from "@balora/safetensors";
import * as T from "@balora/tensor";
import { generateInBrowser } from "../../examples/browser.js";

export interface SmokeInput {
  /** llama-f32's files by name. */
  model: Map<string, Uint8Array>;
  /** mistral-f32-sharded's files as Files of a picked folder (webkitRelativePath "mistral/<name>"). */
  shardedFolder: File[];
  /** llama-f32 served over HTTP (with Range support): its base URL. */
  modelUrl: string;
  /** The peft llama-lora adapter's files by name. */
  adapter: Record<string, FileData>;
  prompt: string;
}

async function logits(model: LanguageModel, ids: number[], backend: T.Backend): Promise<number[]> {
  const x = T.tensor(Int32Array.from(ids), [1, ids.length], { backend });
  const out = T.noGrad(() => model.forward(x));
  const values = Array.from(await out.data());
  out.dispose();
  x.dispose();
  return values;
}

const message = (e: unknown) => `${(e as Error).name}: ${(e as Error).message}`;

export async function smoke(input: SmokeInput) {
  const backend = T.cpuBackend();
  const variants = { registered: registeredVariants(), lora: getVariant("lora").name, dora: getVariant("dora").name };
  const plugin: AdapterVariant = { ...getVariant("lora"), name: "lora" };
  const overrideBuiltIn = (() => {
    try {
      registerVariant(plugin);
      return "replaced";
    } catch (e) {
      return message(e);
    }
  })();
  const webgpu = await T.createWebGPU().then(
    () => "created",
    (e) => message(e),
  );

  const tokenizer = await Tokenizer.fromDir(input.model);
  const ids = tokenizer.encode(input.prompt);
  const config = await readConfig(input.model);
  const model = await loadModel(input.model, { backend });
  const base = await logits(model, ids, backend);

  const adapterConfig = await readAdapterConfig(input.adapter);
  await loadAdapter(model, input.adapter);
  const adapted = await logits(model, ids, backend);
  // The adapter as a page would offer it for download, loaded back into a fresh model from those bytes.
  const files = await adapterFiles(model);
  const again = await loadModel(input.model, { backend });
  await loadAdapter(again, files);
  const reloaded = await logits(again, ids, backend);

  const overHttp = await loadModel(new URL(input.modelUrl), { backend });
  const httpLogits = await logits(overHttp, (await Tokenizer.fromDir(input.modelUrl)).encode(input.prompt), backend);

  const sharded = await loadModel(input.shardedFolder, { backend });
  const shardedLogits = await logits(sharded, ids, backend);
  const checkpoint = await openCheckpoint(input.shardedFolder);
  const shardFiles = checkpoint.files.map((f) => f.path);
  await checkpoint.close();

  const example = await generateInBrowser(input.model, backend);

  return {
    example,
    variants,
    overrideBuiltIn,
    webgpu,
    ids,
    architecture: config.architecture,
    base,
    adapted,
    adapterTargets: adapterConfig.target_modules,
    adapterFileNames: Object.keys(files),
    reloaded,
    httpLogits,
    shardedLogits,
    shardFiles,
  };
}
