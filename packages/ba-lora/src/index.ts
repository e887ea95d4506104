// @balora/ba-lora public API: the BA-LoRA pipeline (data, trainer, teacher, checkpoints, eval) and
// the `balora` CLI entry point.
export { main } from "./cli/main.js";
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
export { DataError, type DataRecord, Invalid, type InvalidRecord, parseRecords } from "./data/records.js";
