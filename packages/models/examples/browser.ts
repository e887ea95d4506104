import { type CausalLM, generate, loadModel, Tokenizer } from "@balora/models";
import * as T from "@balora/tensor";

// In a page: a model folder the user picked (<input type="file" webkitdirectory>: a FileList), files
// fetched into a Map, or a repository's base URL (tensors fetched one by one with Range requests).
export async function generateInBrowser(dir: File[] | Map<string, Uint8Array> | URL, backend?: T.Backend): Promise<string> {
  backend ??= await T.initWebGPU(); // navigator.gpu
  const tokenizer = await Tokenizer.fromDir(dir);
  const model = (await loadModel(dir, { backend })) as CausalLM;
  const out = await generate(model, tokenizer.encode("Janet has 3 ducks"), { maxNewTokens: 8 });
  return tokenizer.decode(out, { skipSpecialTokens: true });
}
