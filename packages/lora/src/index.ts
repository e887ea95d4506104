// @balora/lora public API: PEFT-compatible LoRA adapters on any @balora/tensor Module tree — config,
// injection, variants (LoRA, DoRA, plugins), PiSSA, merging, multi-adapter control, peft save/load.
export {
  DEFAULT_LORA_CONFIG,
  DEFAULT_TARGETS,
  type InitLoraWeights,
  type LoraConfig,
  loraConfig,
  patternKey,
  resolveModuleParams,
  variantOf,
} from "./config.js";
export { isTarget } from "./match.js";
export {
  type AdapterState,
  type AdapterVariant,
  type CreateContext,
  type ForwardContext,
  getVariant,
  registeredVariants,
  registerVariant,
} from "./variant.js";
export { deltaWeight, initLoraAB, LORA_A, LORA_B, loraPath, loraVariant } from "./variants/lora.js";
export { doraVariant } from "./variants/dora.js";
export { LoraLinear, memoryName } from "./layer.js";
export { isModuleToSave, ModulesToSaveLinear, type SavedModuleCopy } from "./modules-to-save.js";
export {
  activeAdapters,
  adapterConfigs,
  addModulesToSave,
  deleteAdapter,
  forgetZeroInitialState,
  disableAdapters,
  type InjectOptions,
  type InjectResult,
  injectAdapter,
  loraLayers,
  markInitialState,
  mergeAdapters,
  savedModules,
  mergeAndUnload,
  type ParameterReport,
  setAdapter,
  setDropoutDraw,
  trainableReport,
  unloadAdapters,
  unmergeAdapters,
  withInitialAdapters,
} from "./inject.js";
export { pissaInit, pissaMethod } from "./pissa.js";
export {
  AdapterFormatError,
  type AdapterFiles,
  adapterFiles,
  CONFIG_FILE,
  type LoadAdapterOptions,
  loadAdapter,
  loadAdapterWeights,
  loadInitialState,
  readAdapterConfig,
  type SaveAdapterOptions,
  saveAdapter,
  WEIGHTS_FILE,
} from "./peft.js";
