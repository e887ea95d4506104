// The shared test helpers live in src/testing (published as "@balora/tensor/testing"); tests of this
// package import them from the sources, through this file.
export {
  type CheckOptions,
  checkOp,
  cpu,
  cpuOnly,
  expectClose,
  type InputSpec,
  makeValues,
  maxAbsDiff,
  testBackend,
} from "../src/testing/index.js";

import type { WebGPUBackend } from "../src/index.js";
import { testBackend as backendUnderTest } from "../src/testing/index.js";

/** The backend under test typed for tests that use WebGPU-only counters (skip those when `cpuOnly`). */
export const getGpu = (): Promise<WebGPUBackend> => backendUnderTest() as Promise<WebGPUBackend>;
