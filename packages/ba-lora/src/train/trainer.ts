// The BA-LoRA optimizer step with Hugging Face Trainer's semantics (schedules stepped after each update,
// λ on completed steps, token means over the accumulated batch), non-finite steps skipped, its state, eval.
import { setDropoutDraw } from "@balora/lora";
import { type CausalLM, type LanguageModel, SequenceClassifier } from "@balora/models";
import { BaLoraLoss, type LmHead } from "@balora/regularizers";
import * as T from "@balora/tensor";
import { ArgumentError, BaloraError } from "@balora/tensor";
import { type ClassificationExample, collateClassification } from "../data/classification.js";
import { collateCausal, IGNORE_INDEX, type SupervisedExample } from "../data/instruction.js";
import { batchesPerEpoch, batchIndices, stepPosition } from "../data/order.js";
import { batchLoss, evalBatch, fusedHeadOf, isCausalBatch, type TrainBatch } from "./batch-loss.js";
import { stepsPerEpoch, type TrainSettings, totalSteps } from "./config.js";

/** Training stopped: too many non-finite steps in a row, or a state that does not fit. */
export class TrainingError extends BaloraError {
  override name = "TrainingError";
}

/** One optimizer step's row of metrics.jsonl (DESIGN.md §4); term keys are the active terms' names. */
export type StepRow = Record<string, number | boolean>;

/** The built-in terms' λ keys in metrics (plugins: `lambda_<name>`). */
const LAMBDA_KEYS: Record<string, string> = { consistency: "lambda1", diversity: "lambda2", svd: "lambda3" };
export const lambdaKey = (term: string): string => LAMBDA_KEYS[term] ?? `lambda_${term}`;

/** What a checkpoint records beside the adapter and optimizer tensors (trainer_state.json). */
export interface TrainerState {
  /** Optimizer steps completed (the next step's index). */
  global_step: number;
  /** Epochs completed, as HF logs them (fractional). */
  epoch: number;
  total_steps: number;
  /** Where the next step's first micro-batch is: epoch and batch index in that epoch's order. */
  data_position: { epoch: number; batch: number };
  /** The LR schedule and the rate the next step will use. */
  scheduler: { kind: string; warmup_steps: number; base_lr: number; next_lr: number };
  /** Dropout masks and batch order are pure functions of these: nothing else is random. */
  rng: { seed: number; next_dropout_draw: number };
  skipped_steps: number;
  bad_steps_in_a_row: number;
  elapsed_s: number;
}

/** Training examples: causal-LM (prompt + response, labels per token) or classification (text, class). */
export type TrainExample = SupervisedExample | ClassificationExample;

/** An evaluation's values, as metrics.jsonl's eval row spells them (without the step). */
export interface EvalResult {
  /** Mean task CE over the eval data's supervised tokens (NLG) or examples (NLU). */
  eval_loss: number;
  /** Classification: the share of examples whose argmax class is the label. */
  eval_accuracy?: number;
  eval_examples: number;
  /** Seconds the evaluation took (HF's eval_runtime). */
  eval_runtime: number;
}

export interface TrainerOptions<M extends LanguageModel = LanguageModel> {
  model: M;
  /** SupervisedExample[] for a causal LM, ClassificationExample[] for a sequence classifier. */
  examples: TrainExample[];
  /** The pad id of collated batches (a classifier without one needs equal lengths within a batch). */
  padTokenId: number | null;
  settings: TrainSettings;
  loss: BaLoraLoss;
  /** Warnings (vacuous terms, skipped steps), once per message where the loss says so. */
  warn?: (message: string) => void;
  /** Fault injection for tests: called with each step's index; true makes that step's loss non-finite. */
  injectNonFinite?: (step: number) => boolean;
  /** The clock for tokens_per_s and elapsed_s (seconds; default performance.now). */
  now?: () => number;
}

/** The rate multiplier of HF's get_{constant,linear,cosine}_schedule_with_warmup at completed step s. */
export function lrMultiplier(kind: TrainSettings["scheduler"], total: number, warmupRatio: number): (s: number) => number {
  const sched = T.lrSchedule(kind === "constant" ? "constant_with_warmup" : kind, { totalSteps: total, warmupRatio });
  return sched;
}

export class Trainer<M extends LanguageModel = CausalLM> {
  readonly model: M;
  /** "nlu" for a sequence classifier (class logits [B, C], labels [B]), else "nlg". */
  readonly task: "nlg" | "nlu";
  readonly settings: TrainSettings;
  readonly loss: BaLoraLoss;
  readonly totalSteps: number;
  readonly stepsPerEpoch: number;
  readonly warmupSteps: number;
  readonly optimizer: T.AdamW;
  /** Optimizer steps completed. */
  step = 0;
  skippedSteps = 0;
  badInARow = 0;
  /** Seconds of training before this process (a resumed run continues the clock). */
  elapsedBefore = 0;
  private readonly examples: TrainExample[];
  private readonly padTokenId: number | null;
  private readonly head: LmHead | null;
  private readonly schedule: (s: number) => number;
  private readonly warn: (message: string) => void;
  private readonly injectNonFinite: (step: number) => boolean;
  private readonly now: () => number;
  private startedAt: number;
  private epochOrder: { epoch: number; batches: number[][] } | null = null;

  constructor(o: TrainerOptions<M>) {
    this.model = o.model;
    this.task = o.model instanceof SequenceClassifier ? "nlu" : "nlg";
    if (o.loss.config.taskType !== this.task)
      throw new ArgumentError(
        `Trainer: the loss is for task type "${o.loss.config.taskType}" but the model is ` +
          (this.task === "nlu" ? "a sequence classifier (nlu)" : "a causal LM (nlg)"),
      );
    this.settings = o.settings;
    this.loss = o.loss;
    this.examples = o.examples;
    this.padTokenId = o.padTokenId;
    this.warn = o.warn ?? ((m) => console.warn(`balora: ${m}`));
    this.injectNonFinite = o.injectNonFinite ?? (() => false);
    this.now = o.now ?? (() => performance.now() / 1000);
    const s = o.settings;
    this.totalSteps = totalSteps(o.examples.length, s);
    this.stepsPerEpoch = stepsPerEpoch(o.examples.length, s);
    this.warmupSteps = Math.ceil(this.totalSteps * s.warmup_ratio);
    this.schedule = lrMultiplier(s.scheduler, this.totalSteps, s.warmup_ratio);
    const params = [...o.model.namedTrainableParameters()];
    if (params.length === 0)
      throw new ArgumentError("Trainer: the model has no trainable parameter (inject or load an adapter with trainable: true)");
    this.optimizer = new T.AdamW(params, { lr: s.lr, weightDecay: s.weight_decay, betas: [0.9, 0.999], eps: 1e-8 });
    this.head = fusedHeadOf(o.model);
    o.model.model.gradientCheckpointing = s.gradient_checkpointing;
    o.model.train();
    this.startedAt = this.now();
  }

  get done(): boolean {
    return this.step >= this.totalSteps;
  }

  /** The learning rate the update of completed-step index `s` uses (0 on the first step of a warmed-up run). */
  lrAt(s: number): number {
    return this.settings.lr * this.schedule(s);
  }

  /** The example indices of each micro-batch of step `s` (the epoch's seeded order; the last step of an epoch takes the remainder). */
  microBatches(s: number): number[][] {
    const { batch_size: bs, grad_accum: accum, seed } = this.settings;
    const n = this.examples.length;
    const { epoch, batch } = stepPosition(s, n, bs, accum);
    if (this.epochOrder?.epoch !== epoch) this.epochOrder = { epoch, batches: batchIndices(seed, epoch, n, bs) };
    return this.epochOrder.batches.slice(batch, Math.min(batch + accum, batchesPerEpoch(n, bs)));
  }

  /** One optimizer step: forward/backward over its micro-batches, clipping, AdamW unless non-finite. Returns its metrics row. */
  async trainStep(): Promise<StepRow> {
    if (this.done) throw new ArgumentError(`trainStep: the run is complete (${this.totalSteps} steps)`);
    const s = this.step;
    const t0 = this.now();
    const micro = this.microBatches(s).map((idx) => this.collate(idx.map((i) => this.examples[i])));
    const maskMode = this.loss.config.maskMode;
    // Task CE and token means over the whole accumulated batch: supervised tokens (NLG) or examples (NLU).
    const numItems = micro.reduce((a, b) => a + (isCausalBatch(b) ? b.supervisedTokens : b.batchSize), 0);
    const validRows = micro.reduce(
      (a, b) => a + (isCausalBatch(b) ? maskedRows(b.labels, b.batchSize, b.seqLength, maskMode) : b.batchSize),
      0,
    );
    const sequences = micro.reduce((a, b) => a + b.batchSize, 0);
    const tokens = micro.reduce((a, b) => a + b.attentionMask.reduce((x, y) => x + y, 0), 0);
    const names = this.loss.config.terms.map((t) => t.name);
    // Per micro-batch, on the device: [loss, task CE, each term], any adaptive λ and the vacuous-term flags;
    // summed and read back with the grad norm in one readback after the loop.
    const rows: T.Tensor[] = [];
    const deviceLambdas: T.Tensor[] = [];
    const lambdaSum: Record<string, number> = {};
    const flags: T.Tensor[] = [];
    const vacuous: { message: string }[] = [];
    micro.forEach((batch, j) => {
      setDropoutDraw(this.model, s * this.settings.grad_accum + j);
      const r = batchLoss(this.model, this.loss, batch, {
        step: s,
        totalSteps: this.totalSteps,
        numItems,
        accumulated: { validRows, sequences, microBatches: micro.length },
        head: this.head,
      });
      const faulty = this.injectNonFinite(s) ? T.mul(r.loss, Number.NaN) : null;
      const total = faulty ?? r.loss;
      T.backward(total);
      rows.push(T.tidy(() => T.concat([total, r.task, ...names.map((n) => r.terms[n])].map((x) => T.reshape(T.detach(x), [1])))));
      faulty?.dispose();
      for (const n of names) {
        const l = r.lambdas[n];
        if (typeof l === "number") lambdaSum[n] = (lambdaSum[n] ?? 0) + l;
        else deviceLambdas.push(T.tidy(() => T.reshape(T.detach(l), [1])));
      }
      const f = BaLoraLoss.vacuousFlags(r);
      if (f) flags.push(f);
      vacuous.push(...r.vacuous);
      BaLoraLoss.dispose(r);
    });
    const norm = clipNorm(this.optimizer.params, this.settings.max_grad_norm);
    const width = 2 + names.length;
    // [Σ loss, Σ task, Σ terms..., grad norm, mean adaptive λ1 (an adaptive λ1 is a device scalar per micro-batch), flags...]
    const read = T.tidy(() =>
      T.concat([
        T.sum(T.reshape(T.concat(rows, 0), [micro.length, width]), 0),
        T.reshape(norm, [1]),
        ...(deviceLambdas.length ? [T.reshape(T.mean(T.concat(deviceLambdas, 0)), [1])] : []),
        ...flags,
      ]),
    );
    const values = Array.from(await read.data());
    for (const t of [...rows, ...deviceLambdas, ...flags, norm, read]) t.dispose();
    const [loss, task, ...terms] = values.slice(0, width);
    const gradNorm = values[width];
    const lambdas: Record<string, number> = {};
    for (const n of names) lambdas[n] = (lambdaSum[n] ?? 0) / micro.length;
    if (deviceLambdas.length) lambdas.consistency = values[width + 1];
    this.loss.warnVacuous(vacuous, values.slice(width + 1 + (deviceLambdas.length ? 1 : 0)));
    const finite = Number.isFinite(loss) && Number.isFinite(gradNorm);
    const lr = this.lrAt(s);
    if (finite) {
      this.optimizer.lr = lr;
      this.optimizer.step();
      this.badInARow = 0;
    } else {
      this.skippedSteps++;
      this.badInARow++;
    }
    this.optimizer.zeroGrad();
    this.step = s + 1;
    const t1 = this.now();
    const row: StepRow = {
      step: s + 1,
      epoch: (s + 1) / this.stepsPerEpoch,
      loss,
      task_loss: task,
    };
    names.forEach((n, i) => {
      row[n] = terms[i];
    });
    for (const [n, l] of Object.entries(lambdas)) row[lambdaKey(n)] = l;
    for (const k of ["lambda1", "lambda2", "lambda3"]) row[k] ??= 0;
    Object.assign(row, {
      lr,
      grad_norm: gradNorm,
      tokens,
      tokens_per_s: tokens / Math.max(t1 - t0, 1e-9),
      elapsed_s: this.elapsedBefore + (t1 - this.startedAt),
      skipped_steps: this.skippedSteps,
    });
    if (!finite) {
      row.skipped = true;
      this.warn(
        `step ${s + 1}: the ${Number.isFinite(loss) ? "gradient norm" : "loss"} is not finite; the update was skipped ` +
          `(${this.badInARow} in a row)`,
      );
      if (this.badInARow >= this.settings.max_bad_steps)
        throw new TrainingError(
          `stopped at step ${s + 1}: ${this.badInARow} steps in a row had a non-finite loss or gradient; ` +
            "lower --lr, set --max-grad-norm, or check the data for extreme values",
        );
    }
    return row;
  }

  /** A micro-batch of the run's task, right-padded. */
  collate(examples: TrainExample[]): TrainBatch {
    if (this.task === "nlu") return collateClassification(examples as ClassificationExample[], this.padTokenId);
    return collateCausal(examples as SupervisedExample[], this.padTokenId ?? 0);
  }

  /**
   * The task loss over `examples` without gradient, in file order and batches of batch_size (dropout
   * off): the mean CE over all their supervised tokens (NLG) or examples (NLU, with accuracy).
   */
  async evaluate(examples: TrainExample[]): Promise<EvalResult> {
    if (examples.length === 0) throw new ArgumentError("evaluate: no eval example");
    const t0 = this.now();
    this.evalLoss ??= new BaLoraLoss({ preset: "lora", taskType: this.task, maskMode: this.loss.config.maskMode });
    const bs = this.settings.batch_size;
    let lossSum = 0;
    let count = 0;
    let correct = 0;
    this.model.eval();
    try {
      for (let i = 0; i < examples.length; i += bs) {
        const r = await evalBatch(this.model, this.evalLoss, this.collate(examples.slice(i, i + bs)), this.head);
        lossSum += r.lossSum;
        count += r.count;
        correct += r.correct ?? 0;
      }
    } finally {
      this.model.train();
    }
    return {
      eval_loss: lossSum / Math.max(count, 1),
      ...(this.task === "nlu" ? { eval_accuracy: correct / examples.length } : {}),
      eval_examples: examples.length,
      eval_runtime: this.now() - t0,
    };
  }

  private evalLoss: BaLoraLoss | null = null;

  /** The state a checkpoint records (see TrainerState). */
  state(): TrainerState {
    const s = this.step;
    const pos = stepPosition(s, this.examples.length, this.settings.batch_size, this.settings.grad_accum);
    return {
      global_step: s,
      epoch: s / this.stepsPerEpoch,
      total_steps: this.totalSteps,
      data_position: pos,
      scheduler: { kind: this.settings.scheduler, warmup_steps: this.warmupSteps, base_lr: this.settings.lr, next_lr: this.lrAt(s) },
      rng: { seed: this.settings.seed, next_dropout_draw: s * this.settings.grad_accum },
      skipped_steps: this.skippedSteps,
      bad_steps_in_a_row: this.badInARow,
      elapsed_s: this.elapsedBefore + (this.now() - this.startedAt),
    };
  }

  /** Continues from a checkpoint's state (the adapter weights and optimizer state are restored by the caller). */
  restore(state: TrainerState): void {
    if (state.total_steps !== this.totalSteps)
      throw new TrainingError(
        `the checkpoint's run has ${state.total_steps} steps, these settings give ${this.totalSteps}; resume with the run's own settings`,
      );
    if (!(Number.isInteger(state.global_step) && state.global_step >= 0 && state.global_step <= this.totalSteps))
      throw new TrainingError(`the checkpoint's global_step ${state.global_step} is not a step of this run`);
    this.step = state.global_step;
    this.skippedSteps = state.skipped_steps;
    this.badInARow = state.bad_steps_in_a_row;
    this.elapsedBefore = state.elapsed_s;
    this.startedAt = this.now();
  }

  dispose(): void {
    this.optimizer.dispose();
    this.head?.dispose();
  }
}

/** Rows a mask mode counts in a collated batch: shifted (labels[t+1] ≠ −100), unshifted (labels[t] ≠ −100), none (all). */
export function maskedRows(labels: Int32Array, B: number, S: number, mode: "shifted" | "unshifted" | "none"): number {
  if (mode === "none") return B * S;
  let n = 0;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < S; t++) {
      if (mode === "shifted" ? t + 1 < S && labels[b * S + t + 1] !== IGNORE_INDEX : labels[b * S + t] !== IGNORE_INDEX) n++;
    }
  return n;
}

/** The global gradient norm before clipping (torch's clip_grad_norm_; max 0 = measure only). */
function clipNorm(params: T.Tensor[], maxNorm: number): T.Tensor {
  const norm = T.clipGradNorm(params, maxNorm > 0 ? maxNorm : Number.POSITIVE_INFINITY);
  return norm ?? T.zeros([], { backend: params[0].backend });
}
