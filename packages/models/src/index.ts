// @balora/models public API: load Hugging Face LLaMA / Mistral / Gemma / Gemma 2 directories, run
// them on @balora/tensor with HF numerics, tokenize, and generate with a KV cache.
export {
  parseConfig,
  SUPPORTED_ARCHITECTURES,
  type Activation,
  type Family,
  type Head,
  type ModelConfig,
  type RopeConfig,
} from "./config.js";
export { ModelConfigError, ModelWeightsError, TokenizerError } from "./errors.js";
export { ropeInvFreq } from "./rope.js";
export {
  Attention,
  CausalLM,
  DecoderLayer,
  DecoderModel,
  disposeCache,
  emptyCache,
  MLP,
  SequenceClassifier,
  type ForwardOptions,
  supervisedRows,
  type KVCache,
  type LanguageModel,
  type LinearLike,
  type WeightSource,
} from "./model.js";
export { buildModel, expectedWeights, loadModel, readConfig, saveModel, type LoadOptions } from "./load.js";
export { Tokenizer, type EncodeOptions } from "./tokenizer.js";
export { generate, sampleToken, type GenerateOptions } from "./generate.js";
