// Loading a model (and, later, an adapter) for a CLI command on the shared WebGPU backend, with
// messages that name the directory when something is wrong.
import { type LanguageModel, loadModel } from "@balora/models";
import * as T from "@balora/tensor";
import { UsageError } from "./args.js";

export async function loadForCli(modelDir: string, adapterDir?: string): Promise<{ model: LanguageModel; backend: T.WebGPUBackend }> {
  const backend = await T.initWebGPU();
  const model = await loadModel(modelDir, { backend });
  if (adapterDir) throw new UsageError(`--adapter ${adapterDir}: adapters are not supported by this version yet`);
  return { model, backend };
}
