// @balora/ba-lora public API for browsers (the `browser` export condition): every name of index.ts but the
// Node-only `balora` CLI entry point `main`, so a page or worker bundles the trainer with no node: import.
export {
  buildClassificationDataset,
  type ClassificationBatch,
  type ClassificationDataset,
  type ClassificationExample,
  type ClassificationOptions,
  collateClassification,
} from "./data/classification.js";
export {
  buildInstructionDataset,
  buildTextDataset,
  type CausalBatch,
  collateCausal,
  encodeInstruction,
  encodePrompt,
  IGNORE_INDEX,
  type InstructionOptions,
  instructionTexts,
  padTokenIdOf,
  type SupervisedDataset,
  type SupervisedExample,
  supervisedCount,
  type TextOptions,
  type TokenizerLike,
} from "./data/instruction.js";
export { batchesPerEpoch, batchIndices, epochPermutation, stepPosition } from "./data/order.js";
export { ALPACA_COT_PROMPT, ALPACA_PROMPT, fillTemplate, parseTemplate, type TemplatePart, templateFields } from "./data/prompt.js";
export { complete, type Completion, type CompleteOptions, firstStop, type TextTokenizer } from "./eval/complete.js";
export { answerNumber, evalFlaw, type FlawGroup, flawReportOf, type FlawReport, scoreFlaw } from "./eval/flaw.js";
export {
  extractFlexible,
  extractPaperAnswer,
  extractStrict,
  GSM8K_METRICS,
  type Gsm8kMode,
  type Gsm8kProblem,
  gsm8kProblems,
  type Gsm8kScore,
  HARNESS_MAX_NEW_TOKENS,
  HARNESS_STOPS,
  harnessCorrect,
  harnessNormalize,
  harnessPrompt,
  INVALID,
  PAPER_MAX_NEW_TOKENS,
  PAPER_STOPS,
  paperCorrect,
  paperGold,
  paperPrompt,
  roundHalfEven,
  scoreGsm8k,
} from "./eval/gsm8k.js";
export {
  evalGsm8k,
  evalPerplexity,
  type Gsm8kOptions,
  type Gsm8kProblemResult,
  type Gsm8kReport,
  gsm8kPrompt,
  type PerplexityReport,
} from "./eval/run.js";
export { isEvalRow, renderReport, REPORT_CHARTS } from "./report/html.js";
export { parseConfig, parseMetrics, type ReportRun, type StepMetrics } from "./report/metrics.js";
export { DataError, type DataRecord, Invalid, type InvalidRecord, parseRecords } from "./data/records.js";
export {
  batchLoss,
  type BatchLossOptions,
  batchTensors,
  type EvalBatchResult,
  evalBatch,
  fusedHeadOf,
  isCausalBatch,
  type TrainBatch,
} from "./train/batch-loss.js";
export {
  checkpointFiles,
  COMPLETE_FILE,
  METRICS_FILE,
  OPTIMIZER_FILE,
  readCheckpointState,
  restoreCheckpoint,
  TRAINER_STATE_FILE,
} from "./train/checkpoint.js";
export {
  adapterConfigOf,
  DEFAULT_FIELDS,
  DEFAULT_SETTINGS,
  evaluatesAt,
  fieldsOf,
  isDefaultFields,
  regularizersConfig,
  resolveSettings,
  SCHEDULERS,
  type SchedulerName,
  SEQ_CLS_MODULES,
  SETTING_KEYS,
  stepsPerEpoch,
  type TrainSettings,
  totalSteps,
} from "./train/config.js";
export {
  lambdaKey,
  lrMultiplier,
  maskedRows,
  type EvalResult,
  type StepRow,
  type TrainExample,
  Trainer,
  type TrainerOptions,
  type TrainerState,
  TrainingError,
} from "./train/trainer.js";
