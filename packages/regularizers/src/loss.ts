// One batch's loss: the task cross-entropy plus every active term times its λ(step), the token terms
// (CE, KL, entropy) in one pass over the vocabulary; device scalars by name, warnings once per run.
import * as T from "@balora/tensor";
import { ArgumentError, ShapeError, type Tensor } from "@balora/tensor";
import {
  BUILT_IN_REGULARIZERS,
  type ConsistencyOptions,
  consistencyWeight,
  type DiversityOptions,
  validCount,
  weightVector,
} from "./builtins.js";
import { type RegularizersConfig, type ResolvedConfig, resolveConfig } from "./presets.js";
import { lambdaFactor } from "./schedules.js";
import { countedTargets, sourceShape, supervisionMask } from "./source.js";
import { teacherEntropy, tokenTerms } from "./token.js";
import type { LogitsSource, RegularizerContext } from "./types.js";

export interface LossBatch {
  /** Student logits ([B, T, V] NLG, [B, C] NLU) or factored hidden states through the LM head. */
  student: LogitsSource;
  /** Teacher logits (same kind as the student's), when a term needs them. */
  teacher?: LogitsSource | null;
  /** NLG: i32 [B, T], −100 where not supervised (the unshifted labels, as HF collators make them). NLU: i32 [B] classes. */
  labels: Tensor;
  /** Optimizer steps completed before this one (0 on the first). */
  step: number;
  /** The run's max steps. */
  totalSteps: number;
  /** Supervised rows of the whole accumulated batch, to normalise the task CE over it (HF's num_items_in_batch). */
  numItems?: number;
  /**
   * With gradient accumulation, the whole accumulated batch: rows its masks count (the token means of
   * the terms; default `numItems` under the `shifted` mask, where they are the same rows), its sequences
   * (`batchmean`), and the number of micro-batches, over which per-batch terms (SVD) are averaged.
   */
  accumulated?: { validRows?: number; sequences?: number; microBatches?: number };
}

export interface LossResult {
  /** task + Σ λ_i·term_i: the scalar to backpropagate. */
  loss: Tensor;
  /** The task cross-entropy (mean over supervised rows; 0 when none is). */
  task: Tensor;
  /** Each active term's value (before λ), by name. */
  terms: Record<string, Tensor>;
  /** λ_i(step) by name (a device scalar for an adaptive λ1). */
  lambdas: Record<string, number | Tensor>;
  /** Device 0/1 flags of terms that were vacuous in this batch, read by `checkWarnings`. */
  vacuous: { message: string; flag: Tensor }[];
}

export interface BaLoraLossOptions {
  /** Where warnings go, once per run each (default console.warn). */
  warn?: (message: string) => void;
  /** Rows per chunk of the fused head (default: 16 MiB of f32 logits per chunk). */
  chunkRows?: number;
  /** Skip terms whose λ(step) is 0 (two-phase's off phase): not computed, absent from `terms` (default false: logged anyway). */
  skipInactive?: boolean;
}

/** Tensors of a result, for disposal. */
const tensorsOf = (r: LossResult): Tensor[] => [
  r.loss,
  r.task,
  ...Object.values(r.terms),
  ...Object.values(r.lambdas).filter((x): x is Tensor => typeof x !== "number"),
  ...r.vacuous.map((v) => v.flag),
];

/**
 * The loss of a run: resolved config, λ schedules, warnings that are printed once. `compute` never
 * reads back; `checkWarnings(result)` reads the vacuous-term flags (call it when reading metrics).
 */
export class BaLoraLoss {
  readonly config: ResolvedConfig;
  private readonly warnFn: (message: string) => void;
  private readonly warned = new Set<string>();
  private readonly chunkRows: number | undefined;
  private readonly skipInactive: boolean;

  constructor(config: RegularizersConfig | ResolvedConfig = {}, opts: BaLoraLossOptions = {}) {
    this.config =
      "effective" in config && Array.isArray((config as ResolvedConfig).terms)
        ? (config as ResolvedConfig)
        : resolveConfig(config as RegularizersConfig);
    this.warnFn = opts.warn ?? ((m) => console.warn(`balora: ${m}`));
    this.chunkRows = opts.chunkRows;
    this.skipInactive = !!opts.skipInactive;
  }

  /** Whether any active term reads the teacher. */
  get needsTeacher(): boolean {
    return this.config.terms.some((t) => t.regularizer.needsTeacher);
  }

  /** λ_i(step) of every active term (host numbers; an adaptive λ1 is the scheduled value before its factor). */
  lambdas(step: number, totalSteps: number): Record<string, number> {
    return Object.fromEntries(this.config.terms.map((t) => [t.name, t.lambda * lambdaFactor(t.schedule, step, totalSteps)]));
  }

  /** Prints `message` once per run. */
  warn(message: string): void {
    if (this.warned.has(message)) return;
    this.warned.add(message);
    this.warnFn(message);
  }

  /** Reads the result's vacuous flags (one small readback) and warns once per run; returns the messages that applied. */
  async checkWarnings(result: LossResult): Promise<string[]> {
    const flags = BaLoraLoss.vacuousFlags(result);
    if (!flags) return [];
    const values = await flags.data();
    flags.dispose();
    return this.warnVacuous(result.vacuous, values);
  }

  /**
   * The result's vacuous flags as one [n] device vector (null when there are none), so a caller can read
   * them with its other values in one readback and then call `warnVacuous`.
   */
  static vacuousFlags(result: LossResult): Tensor | null {
    if (result.vacuous.length === 0) return null;
    return T.tidy(() => T.concat(result.vacuous.map((v) => T.reshape(T.detach(v.flag), [1]))));
  }

  /** Warns once per run for each flag read as > 0 (`values` in the order of `vacuous`); returns the messages that applied. */
  warnVacuous(vacuous: readonly { message: string }[], values: ArrayLike<number>): string[] {
    const hit = vacuous.filter((_, i) => values[i] > 0).map((v) => v.message);
    for (const m of hit) this.warn(m);
    return hit;
  }

  /** Disposes every tensor of a result (after backward and logging). */
  static dispose(result: LossResult): void {
    for (const t of tensorsOf(result)) t.dispose();
  }

  compute(batch: LossBatch): LossResult {
    const { taskType, maskMode } = this.config;
    const student = batch.student;
    const teacher = batch.teacher ?? null;
    if (this.needsTeacher && !teacher)
      throw new ArgumentError(
        `loss: ${this.config.terms
          .filter((t) => t.regularizer.needsTeacher)
          .map((t) => t.name)
          .join(", ")} need the teacher's logits`,
      );
    const { rows } = sourceShape(student);
    const labels = batch.labels;
    if (labels.dtype !== "i32") throw new ShapeError(`loss: labels must be i32, got ${labels.dtype}`);
    if (labels.shape.join() !== rows.join())
      throw new ShapeError(`loss: labels [${labels.shape.join(", ")}] do not match the logits' rows [${rows.join(", ")}]`);
    const vacuous: { message: string; flag: Tensor }[] = [];
    const acc = batch.accumulated ?? {};
    const count = (name: string, v: number | undefined, min: number) => {
      if (v !== undefined && !(Number.isInteger(v) && v >= min))
        throw new ArgumentError(`loss: ${name} must be an integer >= ${min}, got ${v}`);
      return v;
    };
    const numItems = count("numItems", batch.numItems, 0);
    const numValid =
      count("accumulated.validRows", acc.validRows, 0) ?? (maskMode === "shifted" || taskType === "nlu" ? numItems : undefined);
    const numSequences = count("accumulated.sequences", acc.sequences, 1);
    const microBatches = count("accumulated.microBatches", acc.microBatches, 1) ?? 1;
    return T.tidy(() => {
      const backend = labels.backend;
      let mask: Tensor;
      let targets: Tensor;
      if (taskType === "nlg") {
        if (labels.rank !== 2) throw new ShapeError(`loss (NLG): labels must be [B, T], got [${labels.shape.join(", ")}]`);
        mask = supervisionMask(labels, maskMode);
        targets = T.causalTargets(labels).targets;
      } else {
        if (labels.rank !== 1) throw new ShapeError(`loss (NLU): labels must be [B] class ids, got [${labels.shape.join(", ")}]`);
        mask = T.ones(labels.shape, { backend });
        targets = labels;
      }
      const ctx: RegularizerContext = {
        student,
        teacher,
        mask,
        taskType,
        step: batch.step,
        totalSteps: batch.totalSteps,
        numItems,
        numValid,
        numSequences,
        warn: (m) => this.warn(m),
        reportVacuous: (flag, message) => {
          if (typeof flag === "boolean") {
            if (flag) this.warn(message);
          } else vacuous.push({ message, flag });
        },
      };
      const lambdas: Record<string, number | Tensor> = this.lambdas(batch.step, batch.totalSteps);
      const active = this.config.terms.filter((t) => !this.skipInactive || lambdas[t.name] !== 0);
      for (const t of this.config.terms) if (!active.includes(t)) delete lambdas[t.name];
      const terms: Record<string, Tensor> = {};
      // The token pass: CE always; the built-in consistency (KL form) and NLG diversity ride along.
      const cons = active.find((t) => t.name === "consistency" && t.regularizer === BUILT_IN_REGULARIZERS.consistency);
      const consOpts = cons?.options as ConsistencyOptions | undefined;
      const fuseCons = !!cons && (taskType === "nlg" || consOpts!.nlu === "kl");
      const div = active.find((t) => t.name === "diversity" && t.regularizer === BUILT_IN_REGULARIZERS.diversity);
      const fuseDiv = !!div && taskType === "nlg";
      const ceCount = numItems !== undefined ? Math.max(numItems, 1) : T.maximum(T.sum(countedTargets(targets)), 1);
      if (fuseCons && consOpts!.adaptive) {
        const { min, max } = consOpts!.adaptive;
        const H = teacherEntropy(teacher!, mask, consOpts!.tau, this.chunkRows);
        const meanH = T.div(H, validCount({ mask })); // this micro-batch's own mean
        const vocab = sourceShape(student).vocab;
        const conf = T.sub(1, T.clamp(T.div(meanH, Math.log(vocab)), 0, 1));
        lambdas.consistency = T.mul(T.add(T.mul(conf, max - min), min), lambdas.consistency as number);
      }
      const scale = (a: number | Tensor, b: number | Tensor): number | Tensor =>
        typeof a === "number" && typeof b === "number" ? a * b : typeof a === "number" ? T.mul(b as Tensor, a) : T.mul(a, b);
      const inv = (x: number | Tensor) => (typeof x === "number" ? 1 / x : T.div(1, x));
      const klRow = fuseCons ? consistencyWeight(ctx, consOpts!) : 0;
      const entRow = fuseDiv ? scale(inv(validCount(ctx)), -1) : 0;
      const weights = weightVector(backend, [
        inv(ceCount),
        fuseCons ? scale(klRow, lambdas.consistency) : 0,
        fuseDiv ? scale(entRow, lambdas.diversity) : 0,
      ]);
      const pass = tokenTerms({
        student,
        teacher: fuseCons ? teacher : null,
        targets,
        mask,
        weights,
        ce: true,
        kl: fuseCons,
        ent: fuseDiv,
        tau: consOpts?.tau ?? 1,
        topK: fuseDiv ? (div!.options as DiversityOptions).topK : 0,
        chunkRows: this.chunkRows,
      });
      const sums = T.sum(pass.rows, 0);
      const col = (i: number) => T.reshape(T.narrow(sums, 0, i, 1), []);
      const task = scale(col(0), inv(ceCount)) as Tensor;
      if (fuseCons) terms.consistency = scale(col(1), klRow) as Tensor;
      if (fuseDiv) terms.diversity = scale(col(2), entRow) as Tensor;
      let loss = pass.total;
      for (const t of active) {
        if ((t.name === "consistency" && fuseCons) || (t.name === "diversity" && fuseDiv)) continue;
        const raw = t.regularizer.loss(ctx, t.options);
        if (raw.size !== 1) throw new ShapeError(`regularizer "${t.name}" returned shape [${raw.shape.join(", ")}], expected a scalar`);
        const how = typeof t.regularizer.accumulate === "function" ? t.regularizer.accumulate(taskType) : t.regularizer.accumulate;
        // A per-batch term's share of the accumulated batch: its mean over the micro-batches.
        const value = how === "sum" || microBatches === 1 ? raw : T.mul(raw, 1 / microBatches);
        terms[t.name] = value;
        loss = T.add(loss, T.mul(value, lambdas[t.name]));
      }
      const result: LossResult = { loss, task, terms, lambdas, vacuous };
      return result as unknown as T.Tensor;
    }) as unknown as LossResult;
  }
}

/** One batch with a fresh run (warnings not remembered across calls): the config's loss and terms. */
export function computeLosses(config: RegularizersConfig, batch: LossBatch, opts: BaLoraLossOptions = {}): LossResult {
  return new BaLoraLoss(config, opts).compute(batch);
}
