// @balora/tensor public API: backends, Tensor, creation, ops (forward + autograd), nn, optim, linalg.
// Everything a model or regularizer needs is exported here; internals stay in their files.
/// <reference types="@webgpu/types" preserve="true" />
import type { Backend } from "./backend/backend.js";
import { createWebGPU, type WebGPUOptions } from "./backend/device.js";
import type { WebGPUBackend } from "./backend/webgpu.js";
import { peekDefaultBackend, setDefaultBackend } from "./tensor.js";

export type { Backend, MemoryStats, Storage } from "./backend/backend.js";
export { CpuBackend, cpuBackend } from "./backend/cpu.js";
export { WebGPUBackend } from "./backend/webgpu.js";
export { createWebGPU, type WebGPUOptions } from "./backend/device.js";
export * from "./errors.js";
export * from "./dtype.js";
export { broadcastShapes, contiguousStrides, numel, type Shape } from "./shape.js";
export { Tensor, setDefaultBackend, getDefaultBackend, peekDefaultBackend, type GradNode, type NestedArray } from "./tensor.js";
export { backward, isGradEnabled, keep, noGrad, record, tidy } from "./autograd.js";
export * from "./creation.js";
export * from "./ops/elementwise.js";
export * from "./ops/reduce.js";
export * from "./ops/movement.js";
export * from "./ops/matmul.js";
export * from "./ops/softmax.js";
export * from "./ops/rmsnorm.js";
export * from "./ops/rope.js";
export * from "./ops/attention.js";
export * from "./ops/embedding.js";
export * from "./ops/cross-entropy.js";
export * from "./ops/dropout.js";
export * from "./ops/topk.js";

let shared: Promise<WebGPUBackend> | null = null;

/** Creates (once) the WebGPU backend and makes it the default. */
export function initWebGPU(opts?: WebGPUOptions): Promise<WebGPUBackend> {
  shared ??= createWebGPU(opts).then((b) => {
    setDefaultBackend(b);
    return b;
  });
  shared.catch(() => (shared = null));
  return shared;
}

/** Destroys the backend `initWebGPU()` created (so the process can exit); a later call creates a new one. */
export async function releaseWebGPU(): Promise<void> {
  if (!shared) return;
  const b = await shared.catch(() => null);
  shared = null;
  if (!b) return;
  if (peekDefaultBackend() === b) setDefaultBackend(null);
  b.destroy();
}

/** Runs `fn` with `backend` as the default backend. */
export function withBackend<T>(backend: Backend, fn: () => T): T {
  const prev = peekDefaultBackend();
  setDefaultBackend(backend);
  try {
    return fn();
  } finally {
    setDefaultBackend(prev);
  }
}
export { Module } from "./nn/module.js";
export { Linear, Embedding, RMSNorm, type LayerOptions } from "./nn/layers.js";
export { Optimizer } from "./optim/optimizer.js";
export { AdamW, adamwUpdate, type AdamWOptions } from "./optim/adamw.js";
export { SGD, type SGDOptions } from "./optim/sgd.js";
export { lrSchedule, type ScheduleKind, type ScheduleOptions } from "./optim/schedule.js";
export { clipGradNorm } from "./optim/clip.js";
export * from "./linalg/index.js";
