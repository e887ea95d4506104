// One BA-LoRA run on an in-memory model, set up as `balora train` sets it up (adapter, teacher, loss,
// Trainer), with no DOM and no node: import, so the worker runs it on navigator.gpu.
import {
  adapterConfigOf,
  buildInstructionDataset,
  complete,
  type DataRecord,
  PAPER_STOPS,
  padTokenIdOf,
  paperPrompt,
  regularizersConfig,
  type StepRow,
  Trainer,
  type TrainSettings,
} from "@balora/ba-lora";
import { type AdapterFiles, adapterFiles, forgetZeroInitialState, injectAdapter, trainableReport } from "@balora/lora";
import { CausalLM, loadModel, Tokenizer } from "@balora/models";
import { BaLoraLoss, resolveConfig } from "@balora/regularizers";
import type * as T from "@balora/tensor";
import { PROBE_QUESTION } from "./query.js";

export const PROBE_MAX_NEW_TOKENS = 24;

export interface Session {
  trainer: Trainer;
  /** "trainable params: ... || all params: ..." */
  trainable: string;
  examples: number;
  /** One optimizer step's metrics row. */
  step(): Promise<StepRow>;
  /** The greedy completion of the probe question (the paper's prompt). */
  generate(question?: string): Promise<string>;
  /** The adapter's two peft files, as `balora train` writes them into its --out folder. */
  adapter(): Promise<AdapterFiles>;
  dispose(): void;
}

export async function startSession(
  files: ReadonlyMap<string, Uint8Array>,
  records: DataRecord[],
  settings: TrainSettings,
  backend: T.Backend,
  log: (line: string) => void = () => {},
): Promise<Session> {
  const tokenizer = await Tokenizer.fromDir(files);
  const ds = buildInstructionDataset(records, tokenizer, {
    fields: settings.fields,
    template: settings.template ?? undefined,
    maxLength: settings.max_length,
    skipInvalid: settings.skip_invalid,
  });
  if (ds.examples.length === 0) throw new Error("no training examples");
  const model = await loadModel(files, { backend });
  if (!(model instanceof CausalLM)) throw new Error("the bundled model is not a causal LM");
  const pissa = settings.init !== "lora";
  injectAdapter(model, adapterConfigOf(settings, "demo-model"), {
    seed: settings.seed,
    onLayer: (path, i, total) => log(`${settings.init} ${i}/${total} ${path}`),
  });
  await forgetZeroInitialState(model); // plain LoRA: the teacher is the base alone (as balora train does)
  const loss = new BaLoraLoss(resolveConfig(regularizersConfig(settings)), { warn: (m) => log(`warning: ${m}`) });
  const trainer = new Trainer({
    model,
    examples: ds.examples,
    padTokenId: padTokenIdOf(tokenizer),
    settings,
    loss,
    warn: (m) => log(`warning: ${m}`),
  });
  const generate = async (question = PROBE_QUESTION): Promise<string> => {
    const wasTraining = model.training;
    model.eval();
    try {
      return (await complete(model, tokenizer, paperPrompt(question), { maxNewTokens: PROBE_MAX_NEW_TOKENS, stop: PAPER_STOPS })).text;
    } finally {
      model.train(wasTraining);
    }
  };
  return {
    trainer,
    trainable: trainableReport(model).line,
    examples: ds.examples.length,
    step: () => trainer.trainStep(),
    generate,
    adapter: () => adapterFiles(model, { initLoraWeights: pissa ? (settings.init as "pissa") : true }),
    dispose() {
      trainer.dispose();
      model.dispose();
    },
  };
}
