// "@balora/tensor/kernel": what an op author needs to write a WebGPU kernel beside its float64
// oracle and gradient, as the built-in ops do (a fused regularizer loss, a custom adapter op).
export type { Binding, Dispatch, GpuBackend, GpuLimits, Params, Window } from "./backend/backend.js";
export { bytesPerElement, isHalf, storageBytes } from "./dtype.js";
export { mapElementwise } from "./ops/elementwise-kernel.js";
export { matmulAccumulate, matmulDual, matmulRaw } from "./ops/matmul.js";
export {
  bindSpan,
  cpuData,
  cpuValues,
  fitsBinding,
  groups,
  inputDecl,
  isGpu,
  LINEAR_WG,
  MAIN,
  outputDecl,
  paramsDecl,
  type RowPassWgsl,
  reportWgsl,
  requireF32,
  requireFloat,
  reshaped,
  rowMaxSumExp,
  rowMaxSumExpWgsl,
  rowRuns,
  rowsOf,
  rowWorkgroup,
  wgReduceLib,
} from "./ops/kernel.js";
export { reduceRaw, sumTo } from "./ops/reduce.js";
export { emptyTensor, sameBackend } from "./tensor.js";
