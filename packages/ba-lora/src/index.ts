// @balora/ba-lora public API: the BA-LoRA pipeline (data, trainer, teacher, checkpoints, eval) and
// the `balora` CLI entry point.
export { main } from "./cli/main.js";
