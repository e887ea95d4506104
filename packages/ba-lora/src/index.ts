// @balora/ba-lora public API: the BA-LoRA pipeline (data, trainer, teacher, checkpoints, eval, all in
// ./browser.ts, which bundles for pages and workers) and the Node-only `balora` CLI entry point.
export { main } from "./cli/main.js";
export * from "./browser.js";
