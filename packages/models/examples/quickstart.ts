import { type CausalLM, generate, loadModel, Tokenizer } from "@balora/models";
import * as T from "@balora/tensor";

// Load a Hugging Face LLaMA/Mistral/Gemma directory, score a padded batch, and generate.
export async function quickstart(dir: string): Promise<string> {
  const backend = await T.initWebGPU();
  const model = (await loadModel(dir, { backend })) as CausalLM; // bf16 weights stay bf16 on the GPU
  const tokenizer = await Tokenizer.fromDir(dir);

  const ids = T.tensor(new Int32Array([1, 15, 27, 99, 1, 15, 2, 2]), [2, 4], { backend });
  const mask = T.tensor(new Int32Array([1, 1, 1, 1, 1, 1, 0, 0]), [2, 4], { backend });
  const loss = T.noGrad(() => model.loss(model.forward(ids, { attentionMask: mask }), ids));
  console.log(`loss ${(await loss.item()).toFixed(4)}`);

  const prompt = tokenizer.encode("Janet has 3 ducks");
  const out = await generate(model, prompt, { maxNewTokens: 8, temperature: 0.7, topP: 0.9, seed: 1 });
  return tokenizer.decode(out, { skipSpecialTokens: true });
}
