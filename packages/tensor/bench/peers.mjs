// Peer-engine matmul benchmarks (jax-js, tfjs-webgpu) so balora's matmul GFLOP/s can be compared
// side by side on the same WebGPU adapter in the same Node process; caller must set up navigator.gpu first.

/**
 * @typedef {{ gflops: number, maxAbsErr: number, firstCallMs: number, medianMs: number, timesMs: number[], initMs: number,
 *   adapter: string, n: number, batch: number, reps: number }} PeerResult
 */

// ---------------------------------------------------------------------------
// shared helpers

/** Deterministic PRNG (mulberry32) so both peers see the same inputs for a given n. */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n×n row-major f32 matrices A, B with entries uniform in [-1, 1]. */
function makeInputs(n) {
  const rnd = mulberry32(0x9e3779b9 ^ n);
  const a = new Float32Array(n * n);
  const b = new Float32Array(n * n);
  for (let i = 0; i < a.length; i++) a[i] = rnd() * 2 - 1;
  for (let i = 0; i < b.length; i++) b[i] = rnd() * 2 - 1;
  return { a, b };
}

/** A few (row, col) entries to check: the four corners, the centre, and some pseudo-random ones. */
function samplePoints(n, count = 16) {
  const rnd = mulberry32(0x5eed ^ n);
  const pts = [
    [0, 0],
    [0, n - 1],
    [n - 1, 0],
    [n - 1, n - 1],
    [n >> 1, n >> 1],
  ];
  while (pts.length < count) pts.push([Math.floor(rnd() * n), Math.floor(rnd() * n)]);
  return pts;
}

/** Max |C[i,j] - (A·B)[i,j]| over sampled entries, reference computed in float64 on the CPU. */
function maxAbsErrSampled(c, a, b, n) {
  if (!c || c.length !== n * n) return Infinity;
  let maxErr = 0;
  for (const [i, j] of samplePoints(n)) {
    let ref = 0;
    for (let k = 0; k < n; k++) ref += a[i * n + k] * b[k * n + j];
    const err = Math.abs(c[i * n + j] - ref);
    if (Number.isNaN(err)) return NaN; // report NaN/garbage output as a failure, never as 0
    if (err > maxErr) maxErr = err;
  }
  return maxErr;
}

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function describeAdapter(info) {
  if (!info) return "unknown";
  const parts = [info.vendor, info.architecture, info.description || info.device].filter(Boolean);
  return parts.length ? parts.join(" / ") : "unknown";
}

function reasonOf(e) {
  return e?.message ? e.message : String(e);
}

function checkArgs(n, reps, batch) {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`n must be a positive integer, got ${n}`);
  if (!Number.isInteger(reps) || reps < 1) throw new RangeError(`reps must be a positive integer, got ${reps}`);
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be a positive integer, got ${batch}`);
}

/**
 * Common measurement protocol.
 *   once()   -> Promise<Float32Array>: one matmul + async readback (first call, includes compile).
 *   batchRun() -> Promise<Float32Array>: `batch` matmuls enqueued back to back, then ONE async
 *                readback of the last result.
 */
async function measure({ n, reps, batch, once, batchRun, a, b }) {
  let t0 = performance.now();
  const first = await once();
  const firstCallMs = performance.now() - t0;
  let maxAbsErr = maxAbsErrSampled(first, a, b, n);

  await batchRun(); // warm-up (not timed)

  const times = [];
  let last = null;
  for (let r = 0; r < reps; r++) {
    t0 = performance.now();
    last = await batchRun();
    times.push(performance.now() - t0);
  }
  maxAbsErr = Math.max(maxAbsErr, maxAbsErrSampled(last, a, b, n));
  const medianMs = median(times);
  const gflops = (2 * n * n * n * batch) / (medianMs / 1000) / 1e9;
  return { gflops, maxAbsErr, firstCallMs, medianMs, timesMs: times };
}

function noWebGPU() {
  return typeof globalThis.navigator === "undefined" || !globalThis.navigator || !globalThis.navigator.gpu;
}

// ---------------------------------------------------------------------------
// jax-js (@jax-js/jax)

let jaxState = null; // Promise<{ jax, initMs, adapter } | { skipped }>

function loadJax() {
  // Not memoised: the caller may set up navigator.gpu after a first (skipped) call.
  if (noWebGPU()) return Promise.resolve({ skipped: "globalThis.navigator.gpu is not set up" });
  jaxState ??= (async () => {
    let jax;
    try {
      jax = await import("@jax-js/jax");
    } catch (e) {
      return { skipped: `@jax-js/jax not importable: ${reasonOf(e)}` };
    }
    try {
      const t0 = performance.now();
      const available = await jax.init("webgpu");
      const initMs = performance.now() - t0;
      if (!available.includes("webgpu")) return { skipped: "jax-js: webgpu backend failed to initialise" };
      let adapter = "unknown";
      try {
        adapter = describeAdapter(jax.getWebGPUDevice().adapterInfo);
      } catch {
        /* informational only */
      }
      return { jax, initMs, adapter };
    } catch (e) {
      return { skipped: `jax-js init failed: ${reasonOf(e)}` };
    }
  })();
  return jaxState;
}

/**
 * jax-js square f32 matmul throughput on its WebGPU backend.
 * @returns {Promise<PeerResult | { skipped: string }>}
 */
export async function jaxMatmulGflops(n, { reps = 5, batch = 4 } = {}) {
  checkArgs(n, reps, batch);
  const st = await loadJax();
  if (st.skipped) return { skipped: st.skipped };
  const { jax, initMs, adapter } = st;
  const np = jax.numpy;
  const { a, b } = makeInputs(n);

  let A = null;
  let B = null;
  try {
    // Explicit device so the arrays (and therefore the matmul) are committed to WebGPU,
    // whatever the caller's jax defaultDevice is.
    A = np.array(a, { shape: [n, n], dtype: np.float32, device: "webgpu" });
    B = np.array(b, { shape: [n, n], dtype: np.float32, device: "webgpu" });
    if (A.device !== "webgpu") return { skipped: `jax-js placed input on ${A.device}, not webgpu` };

    // jax-js ops consume their arguments (move semantics), so pass `.ref` to keep A/B alive.
    // jax-js is lazy: an unread result is never dispatched, so each non-final result is
    // forced onto the GPU queue with gpuBuffer() (prepare + submit, no readback) and then
    // released; only the last one is read back with the async data().
    const once = async () => {
      const C = np.matmul(A.ref, B.ref);
      if (C.device !== "webgpu") {
        C.dispose();
        throw new Error(`jax-js matmul ran on ${C.device}`);
      }
      return /** @type {Float32Array} */ (await C.data()); // data() disposes C
    };
    const batchRun = async () => {
      for (let i = 0; i < batch - 1; i++) await np.matmul(A.ref, B.ref).gpuBuffer(); // gpuBuffer() disposes the array
      return /** @type {Float32Array} */ (await np.matmul(A.ref, B.ref).data());
    };

    const res = await measure({ n, reps, batch, once, batchRun, a, b });
    return { ...res, initMs, adapter, n, batch, reps };
  } catch (e) {
    return { skipped: `jax-js matmul failed: ${reasonOf(e)}` };
  } finally {
    try {
      A?.dispose();
    } catch {
      /* already released */
    }
    try {
      B?.dispose();
    } catch {
      /* already released */
    }
  }
}

// ---------------------------------------------------------------------------
// TensorFlow.js (@tensorflow/tfjs-core + @tensorflow/tfjs-backend-webgpu)

let tfState = null; // Promise<{ tf, initMs, adapter } | { skipped }>

function loadTf() {
  // Not memoised: the caller may set up navigator.gpu after a first (skipped) call.
  if (noWebGPU()) return Promise.resolve({ skipped: "globalThis.navigator.gpu is not set up" });
  tfState ??= (async () => {
    let tf;
    try {
      tf = await import("@tensorflow/tfjs-core");
      // The backend package registers 'webgpu' at import time, and only if navigator.gpu exists.
      await import("@tensorflow/tfjs-backend-webgpu");
    } catch (e) {
      return { skipped: `tfjs not importable: ${reasonOf(e)}` };
    }
    try {
      const t0 = performance.now();
      // Without this, tfjs-webgpu runs ops whose inputs are still CPU-resident and have
      // < WEBGPU_CPU_HANDOFF_SIZE_THRESHOLD (1000) elements on its CPU kernels (n < 32 here).
      tf.env().set("WEBGPU_CPU_FORWARD", false);
      const ok = await tf.setBackend("webgpu");
      await tf.ready();
      const initMs = performance.now() - t0;
      if (!ok || tf.getBackend() !== "webgpu") {
        return { skipped: `tfjs: webgpu backend not active (setBackend=${ok}, getBackend()=${tf.getBackend()})` };
      }
      const be = tf.backend();
      const adapter = describeAdapter(be.device?.adapterInfo ?? be.adapterInfo);
      return { tf, initMs, adapter };
    } catch (e) {
      return { skipped: `tfjs webgpu init failed: ${reasonOf(e)}` };
    }
  })();
  return tfState;
}

/**
 * TensorFlow.js square f32 matmul throughput on its WebGPU backend.
 * @returns {Promise<PeerResult | { skipped: string }>}
 */
export async function tfjsMatmulGflops(n, { reps = 5, batch = 4 } = {}) {
  checkArgs(n, reps, batch);
  const st = await loadTf();
  if (st.skipped) return { skipped: st.skipped };
  const { tf, initMs, adapter } = st;
  // Someone else may have switched backends since we initialised.
  if (tf.getBackend() !== "webgpu") {
    const ok = await tf.setBackend("webgpu");
    if (!ok || tf.getBackend() !== "webgpu") return { skipped: "tfjs: could not re-activate the webgpu backend" };
  }
  const { a, b } = makeInputs(n);

  let A = null;
  let B = null;
  try {
    A = tf.tensor2d(a, [n, n], "float32");
    B = tf.tensor2d(b, [n, n], "float32");

    // tfjs batches dispatches into command encoders and submits on readback (or every
    // WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE ops); disposing a pending result is safe, tfjs defers
    // the buffer release until the work is submitted.
    const readLast = async (C) => {
      try {
        return /** @type {Float32Array} */ (await C.data());
      } finally {
        C.dispose();
      }
    };
    const once = async () => readLast(tf.matMul(A, B));
    const batchRun = async () => {
      for (let i = 0; i < batch - 1; i++) tf.matMul(A, B).dispose();
      return readLast(tf.matMul(A, B));
    };

    const res = await measure({ n, reps, batch, once, batchRun, a, b });
    if (tf.getBackend() !== "webgpu") return { skipped: "tfjs backend changed during the run" };
    return { ...res, initMs, adapter, n, batch, reps };
  } catch (e) {
    return { skipped: `tfjs matmul failed: ${reasonOf(e)}` };
  } finally {
    A?.dispose();
    B?.dispose();
  }
}
