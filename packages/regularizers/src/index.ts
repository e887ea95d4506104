// @balora/regularizers public API: the Regularizer interface and registry, the built-in terms, λ
// schedules, presets and config resolution, the per-batch loss, and the LM head for the fused path.
export {
  BUILT_IN_REGULARIZERS,
  type ConsistencyOptions,
  consistencyRegularizer,
  type DiversityOptions,
  diversityRegularizer,
  MAX_TOP_K,
  type SvdOptions,
  svdRegularizer,
} from "./builtins.js";
export { BaLoraLoss, type BaLoraLossOptions, computeLosses, type LossBatch, type LossResult } from "./loss.js";
export {
  DEFAULT_PRESET,
  MASK_MODES,
  PRESETS,
  type PresetName,
  presetConfig,
  type RegularizersConfig,
  type ResolvedConfig,
  type ResolvedTerm,
  resolveConfig,
  type TermConfig,
} from "./presets.js";
export { getRegularizer, loadRegularizerPlugin, registeredRegularizers, registerRegularizer } from "./registry.js";
export { adaptiveFactor, type LambdaSchedule, lambdaFactor, parseSchedule, SCHEDULE_KINDS } from "./schedules.js";
export { factoredLogits, isFactored, LmHead, type LmHeadOptions, materialize, supervisionMask } from "./source.js";
export { type SvdTermOptions, svdTerm, type VacuousReporter } from "./svd.js";
export { defaultChunkRows, type TokenTermsRequest, type TokenTermsResult, teacherEntropy, tokenTerms } from "./token.js";
export type { FactoredLogits, LogitsSource, MaskMode, Regularizer, RegularizerContext, TaskType } from "./types.js";
