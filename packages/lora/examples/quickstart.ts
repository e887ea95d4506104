import { injectAdapter, loadAdapter, mergeAndUnload, saveAdapter, trainableReport, withInitialAdapters } from "@balora/lora";
import * as T from "@balora/tensor";

// Any Module tree with named Linear layers works; @balora/models' LLaMA/Mistral/Gemma use HF names.
class Block extends T.Module {
  q_proj = new T.Linear(16, 16, { seed: 1 });
  v_proj = new T.Linear(16, 16, { seed: 2 });
}

export async function quickstart(dir: string): Promise<number> {
  await T.initWebGPU();
  const model = new Block();
  // PiSSA: the principal rank-4 part of each weight becomes the adapter, the base keeps the residual.
  injectAdapter(model, { r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj"], init_lora_weights: "pissa" });
  console.log(trainableReport(model).line); // trainable params: 256 || all params: 768 || trainable%: 33.3333

  const x = T.randn([2, 16], { seed: 3 });
  const opt = new T.AdamW(model.trainableParameters(), { lr: 1e-2, weightDecay: 0 });
  T.tidy(() => T.backward(T.sum(T.square(model.q_proj.forward(x)))));
  opt.step();

  // The frozen pre-trained model, without a second copy: each adapter at its initial state.
  const teacher = await withInitialAdapters(model, () => T.noGrad(() => model.q_proj.forward(x)).data());
  console.log(`teacher output[0] = ${teacher[0].toFixed(4)}`);

  // peft format; convert PiSSA to plain LoRA so Python peft applies it to the ORIGINAL base.
  await saveAdapter(model, dir, { convertPissaToLora: true });
  const fresh = new Block(); // original weights (same seeds)
  await loadAdapter(fresh, dir);
  mergeAndUnload(fresh); // W + s·B'·A', back to plain Linear layers
  const a = await T.noGrad(() => model.q_proj.forward(x)).data();
  const b = await T.noGrad(() => fresh.q_proj.forward(x)).data();
  return Math.max(...a.map((v, i) => Math.abs(v - b[i])));
}
