// @balora/tensor public API, listed explicitly: backends, Tensor, creation, differentiable ops,
// autograd, nn, optim, linalg. Kernel authors import "@balora/tensor/kernel"; tests "…/testing".
/// <reference types="@webgpu/types" preserve="true" />

export type { Backend, GpuBackend, MemoryStats, Storage } from "./backend/backend.js";
export { CpuBackend, cpuBackend } from "./backend/cpu.js";
export { createWebGPU, type WebGPUOptions } from "./backend/device.js";
export { initWebGPU, releaseWebGPU } from "./backend/shared-webgpu.js";
export { WebGPUBackend } from "./backend/webgpu.js";
export { type BackwardOptions, backward } from "./backward.js";
export {
  arange,
  type CreateOptions,
  full,
  ones,
  onesLike,
  type RandomOptions,
  Rng,
  rand,
  randint,
  randn,
  tensor,
  tensorFromBytes,
  toBackend,
  zeros,
  zerosLike,
} from "./creation.js";
export { DTYPES, type DType, roundValues } from "./dtype.js";
export {
  ArgumentError,
  BackendMismatchError,
  BaloraError,
  DeviceError,
  DisposedError,
  DTypeError,
  IndexError,
  ShapeError,
} from "./errors.js";
export { type BackwardFn, enableGrad, type GradNode, isGradEnabled, keep, noGrad, record, tidy } from "./graph.js";
export {
  type EighOptions,
  eigh,
  qr,
  type SvdLowRankOptions,
  type SvdOptions,
  type SvdResult,
  type SvdvalsOptions,
  svd,
  svdLowRank,
  svdvals,
} from "./linalg/index.js";
export { Embedding, type LayerOptions, Linear, RMSNorm } from "./nn/layers.js";
export { Module } from "./nn/module.js";
export { type AttentionOptions, attention } from "./ops/attention.js";
export { checkpoint } from "./ops/checkpoint.js";
export { copyInto, copyToContiguous, fill } from "./ops/copy.js";
export { type CrossEntropyOptions, causalTargets, crossEntropy } from "./ops/cross-entropy.js";
export { type DropoutKey, dropout, dropoutKey } from "./ops/dropout.js";
export {
  abs,
  add,
  cast,
  clamp,
  cos,
  detach,
  div,
  eq,
  exp,
  type GateActivation,
  gated,
  ge,
  gelu,
  geluExact,
  gt,
  identity,
  le,
  log,
  lt,
  maximum,
  minimum,
  mul,
  ne,
  neg,
  pow,
  relu,
  rsqrt,
  sigmoid,
  silu,
  sin,
  sqrt,
  square,
  sub,
  tanh,
  where,
} from "./ops/elementwise.js";
export { embedding } from "./ops/embedding.js";
export { type AddmmOptions, addmm, type MatmulOptions, matmul } from "./ops/matmul.js";
export {
  concat,
  contiguous,
  expand,
  flatten,
  narrow,
  permute,
  reshape,
  type SliceRange,
  slice,
  split,
  squeeze,
  transpose,
  unsqueeze,
} from "./ops/movement.js";
export { max, mean, sum } from "./ops/reduce.js";
export { type ProfileEntry, profileTag, withProfileTag } from "./profile.js";
export { type RmsNormOptions, rmsNorm } from "./ops/rmsnorm.js";
export { type RopeOptions, rope } from "./ops/rope.js";
export { logSoftmax, softmax } from "./ops/softmax.js";
export { argmax, MAX_TOPK, topk } from "./ops/topk.js";
export { AdamW, type AdamWOptions } from "./optim/adamw.js";
export { clipGradNorm } from "./optim/clip.js";
export { OPTIMIZER_METADATA_KEY, Optimizer, type OptimizerStateDict, type ParamsInput } from "./optim/optimizer.js";
export { lrSchedule, type ScheduleKind, type ScheduleOptions } from "./optim/schedule.js";
export { SGD, type SGDOptions } from "./optim/sgd.js";
export { numel, type Shape } from "./shape.js";
export { getDefaultBackend, type NestedArray, peekDefaultBackend, setDefaultBackend, Tensor } from "./tensor.js";
