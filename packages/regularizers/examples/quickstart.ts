// The README's example: BA-LoRA's iclr2026 loss (CE + consistency + diversity + SVD) of one batch,
// fused over the vocabulary (hidden states + the frozen LM head), then the same from materialised logits.
import { BaLoraLoss, factoredLogits, LmHead } from "@balora/regularizers";
import * as T from "@balora/tensor";

export async function quickstart(backend: T.Backend = T.cpuBackend()): Promise<{ fused: number; materialised: number }> {
  const [B, S, h, V] = [2, 16, 32, 500];
  const lmHead = T.randn([V, h], { backend, seed: 1, std: 0.2 }); // the model's frozen LM head weight
  const hidden = T.randn([B, S, h], { backend, seed: 2, requiresGrad: true }); // student's final hidden states
  const teacherHidden = T.noGrad(() => T.add(hidden, T.randn([B, S, h], { backend, seed: 3, std: 0.1 })));
  // labels as HF collators make them: −100 on the prompt and on padding
  const labels = T.tensor(
    Array.from({ length: B * S }, (_, i) => (i % S < 4 || i >= 28 ? -100 : (i * 37) % V)),
    [B, S],
    { backend, dtype: "i32" },
  );
  const loss = new BaLoraLoss({ preset: "iclr2026", k: 4 }); // every preset value can be overridden
  const head = new LmHead(lmHead);
  const r = loss.compute({
    student: factoredLogits(hidden, head),
    teacher: factoredLogits(teacherHidden, head),
    labels,
    step: 60, // optimizer steps completed
    totalSteps: 100,
  });
  T.backward(r.loss); // hidden.grad: d(loss)/d(hidden states), formed chunk by chunk
  const fused = await r.loss.item();
  const terms = Object.fromEntries(await Promise.all(Object.entries(r.terms).map(async ([k, v]) => [k, await v.item()])));
  console.log(`loss ${fused.toFixed(4)} = task ${(await r.task.item()).toFixed(4)} + λ·`, terms, r.lambdas);
  await loss.checkWarnings(r); // reads the vacuous-term flags; warns once per run
  BaLoraLoss.dispose(r);
  // The materialised path: same numbers from [B, S, V] logits.
  const logits = T.matmul(hidden, lmHead, { transB: true });
  const teacher = T.noGrad(() => T.matmul(teacherHidden, lmHead, { transB: true }));
  const m = loss.compute({ student: logits, teacher, labels, step: 60, totalSteps: 100 });
  const materialised = await m.loss.item();
  BaLoraLoss.dispose(m);
  head.dispose();
  return { fused, materialised };
}
