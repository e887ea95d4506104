// Errors a user meets when bringing a model directory: a bad or unsupported config.json, weights
// that do not fit the architecture, a missing tokenizer. Each message names the file and the fix.
import { BaloraError } from "@balora/tensor";

/** config.json is missing, malformed, or describes an unsupported architecture or option. */
export class ModelConfigError extends BaloraError {
  override name = "ModelConfigError";
}

/** The checkpoint's tensors do not match the architecture (missing, unexpected, wrong shape or dtype). */
export class ModelWeightsError extends BaloraError {
  override name = "ModelWeightsError";
}

/** tokenizer.json / tokenizer_config.json missing or unusable. */
export class TokenizerError extends BaloraError {
  override name = "TokenizerError";
}
