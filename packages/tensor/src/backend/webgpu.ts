// The WebGPU backend: one long-lived command encoder and compute pass, batched submits, buffers
// pooled by size and reused only after the submit that last used them, pipelines cached by key.
import type { DType } from "../dtype.js";
import { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16 } from "@balora/safetensors";
import { bytesPerElement, storageBytes } from "../dtype.js";
import { DeviceError, IndexError } from "../errors.js";
import type { Binding, Dispatch, GpuBackend, GpuLimits, MemoryStats, Params, Storage } from "./backend.js";
import { type ProfileEntry, profileTag } from "../profile.js";
import { grid1d, hoistDirectives } from "./wgsl.js";

export class GpuStorage implements Storage {
  refs = 0;
  constructor(
    readonly backend: WebGPUBackend,
    readonly dtype: DType,
    readonly numel: number,
    readonly buffer: GPUBuffer,
    /** Stable id used in bind-group cache keys. */
    readonly id: number,
  ) {}
}

const UNIFORM_BLOCK = 256;
const CHUNK_BYTES = 64 * 1024;
const SLOTS_PER_CHUNK = CHUNK_BYTES / UNIFORM_BLOCK;
/** Above this many distinct parameter blocks the slot table is rebuilt (at the next flush). */
const MAX_SLOTS = 64 * 1024;

/**
 * A parameter block stored once in a uniform buffer at a fixed offset. Dispatches with identical
 * params share it, so bind groups stay cacheable without dynamic offsets (which cost ~25 µs per
 * dispatch on lavapipe).
 */
interface ParamSlot {
  id: number;
  buffer: GPUBuffer;
  offset: number;
  words: Uint32Array;
}
/** Bind-group cache key part of one binding: the buffer id, plus the window of a windowed binding. */
const bindingKey = (b: Binding): string =>
  "storage" in b ? `,${(b.storage as GpuStorage).id}@${b.byteOffset}+${b.byteLength}` : `,${(b as GpuStorage).id}`;

function bucketBytes(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes - 1));
  if (bytes <= 1 << 20) return p * 2;
  const step = p / 8;
  return Math.ceil(bytes / step) * step;
}

const debug = typeof process !== "undefined" && !!process.env?.BALORA_DEBUG;

interface PipelineEntry {
  pipeline: GPUComputePipeline;
  layout: LayoutEntry;
  key: string;
}
interface LayoutEntry {
  bgl: GPUBindGroupLayout;
  pipelineLayout: GPUPipelineLayout;
  key: string;
}

export class WebGPUBackend implements GpuBackend {
  readonly kind = "webgpu" as const;
  readonly limits: GpuLimits;
  /** Dispatches per submit: bigger batches amortise submit cost, smaller ones start the GPU sooner. */
  submitEvery = 32;

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private passPipeline: GPUComputePipeline | null = null;

  private dispatchesInBatch = 0;
  private readonly scratch = new ArrayBuffer(UNIFORM_BLOCK);
  private readonly scratchU32 = new Uint32Array(this.scratch);
  private readonly scratchI32 = new Int32Array(this.scratch);
  private readonly scratchF32 = new Float32Array(this.scratch);
  private readonly paramChunks: GPUBuffer[] = [];
  private slots = new Map<number, ParamSlot[]>();
  private slotCount = 0;
  private nextSlotId = 1;

  private readonly pipelines = new Map<string, PipelineEntry>();
  private readonly layouts = new Map<string, LayoutEntry>();
  private bindGroups = new Map<string, GPUBindGroup>();
  private readonly pool = new Map<number, GPUBuffer[]>();
  private readonly stagingPool = new Map<number, GPUBuffer[]>();
  private pendingRelease: GPUBuffer[] = [];
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextId = 1;
  private liveBytes = 0;
  private peak = 0;
  private pooledBytes = 0;
  private liveCount = 0;
  private lostReason: string | null = null;
  private readonly errors: string[] = [];
  /** Device-side input validation (gather ids, labels): kernels report, the next readback throws. */
  private errorBuf: GpuStorage | null = null;
  private readonly checkCodes = new Map<string, number>();
  private readonly checkMessages: string[] = [];
  private checksPending = false;
  /** Counters for tests and benchmarks. */
  readonly counters = { dispatches: 0, submits: 0, pipelinesCompiled: 0, bindGroupsCreated: 0, buffersCreated: 0 };

  constructor(
    readonly device: GPUDevice,
    readonly description: string,
    /** What kernels may assume: a CPU implementation (lavapipe) and a fixed subgroup size. */
    readonly traits: { software: boolean; subgroupSize: number | null; fallback?: boolean } = { software: false, subgroupSize: null },
    /** Lower limits than the device's (tests exercise windowed bindings with a small binding size). */
    limitOverrides: Partial<GpuLimits> = {},
  ) {
    const l = device.limits;
    this.limits = {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      minStorageBufferOffsetAlignment: l.minStorageBufferOffsetAlignment,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      ...limitOverrides,
    };
    device.lost.then((info) => {
      this.lostReason = `${info.reason}: ${info.message}`;
    });
    device.addEventListener("uncapturederror", (ev) => {
      const msg = (ev as GPUUncapturedErrorEvent).error.message;
      if (this.errors.length < 8) this.errors.push(msg);
      if (debug) console.error(`[balora] WebGPU error: ${msg}`);
    });
  }

  private checkAlive(): void {
    if (this.lostReason !== null)
      throw new DeviceError(`WebGPU device was lost (${this.lostReason}); create a new backend with initWebGPU() and re-upload tensors`);
    if (this.errors.length > 0) {
      const msg = this.errors.splice(0).join("; ");
      throw new DeviceError(`WebGPU reported an error: ${msg}`);
    }
  }

  get lost(): boolean {
    return this.lostReason !== null;
  }

  // ---- storage ---------------------------------------------------------------------------------

  alloc(dtype: DType, numel: number): GpuStorage {
    this.checkAlive();
    const bytes = storageBytes(numel, dtype);
    const max = this.limits.maxBufferSize;
    if (bytes > max)
      throw new DeviceError(
        `a ${dtype} tensor of ${numel} elements needs ${bytes} bytes, above this adapter's maxBufferSize (${max} bytes); ` +
          "use a GPU with larger buffers (or keep the weights in 16-bit)",
      );
    const cap = Math.min(bucketBytes(bytes), Math.max(bytes, max - (max % 4)));
    let buffer = this.takePooled(cap);
    if (buffer) this.pooledBytes -= cap;
    else {
      buffer = this.device.createBuffer({ size: cap, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
      this.bufferIds.set(buffer, this.nextId++);
      this.counters.buffersCreated++;
    }
    this.liveBytes += cap;
    if (this.liveBytes > this.peak) this.peak = this.liveBytes;
    this.liveCount++;
    return new GpuStorage(this, dtype, numel, buffer, this.bufferIds.get(buffer)!);
  }

  upload(dtype: DType, values: ArrayLike<number>): GpuStorage {
    const s = this.alloc(dtype, values.length);
    this.device.queue.writeBuffer(s.buffer, 0, encodeValues(dtype, values));
    return s;
  }

  uploadBytes(dtype: DType, bytes: Uint8Array): GpuStorage {
    const n = bytes.byteLength / bytesPerElement(dtype);
    const s = this.alloc(dtype, n);
    // writeBuffer needs a multiple of 4 bytes: pad an odd count of 16-bit values.
    let data = bytes;
    if (bytes.byteLength % 4 !== 0) {
      data = new Uint8Array(bytes.byteLength + 2);
      data.set(bytes);
    }
    this.writeBytes(s, 0, data);
    return s;
  }

  /** Writes raw bytes (already in the storage's dtype layout) at a byte offset. */
  writeBytes(s: GpuStorage, byteOffset: number, bytes: ArrayBufferView): void {
    this.checkAlive();
    this.device.queue.writeBuffer(s.buffer, byteOffset, bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  release(storage: Storage): void {
    const s = storage as GpuStorage;
    this.liveBytes -= s.buffer.size;
    this.liveCount--;
    // A pending command may still read this buffer: it becomes reusable only after that submit.
    if (this.encoder) this.pendingRelease.push(s.buffer);
    else this.toPool(s.buffer);
  }

  /**
   * The free buffer of this size with the lowest id: the choice depends only on which buffers are
   * free, not on the order they came back, so a repeated step gets the same buffers and its bind
   * groups come from the cache.
   */
  private takePooled(size: number): GPUBuffer | undefined {
    const list = this.pool.get(size);
    if (!list?.length) return undefined;
    let best = 0;
    for (let i = 1; i < list.length; i++) if (this.bufferIds.get(list[i])! < this.bufferIds.get(list[best])!) best = i;
    const [b] = list.splice(best, 1);
    return b;
  }

  private toPool(b: GPUBuffer): void {
    const list = this.pool.get(b.size);
    if (list) list.push(b);
    else this.pool.set(b.size, [b]);
    this.pooledBytes += b.size;
  }

  /** Destroys pooled (free) buffers, returning their memory to the driver. */
  trimPool(): void {
    for (const list of this.pool.values()) for (const b of list) b.destroy();
    this.pool.clear();
    this.pooledBytes = 0;
    this.bindGroups = new Map();
  }

  memory(): MemoryStats {
    return { bytesInUse: this.liveBytes, bytesPooled: this.pooledBytes, storages: this.liveCount, peakBytes: this.peak };
  }

  resetPeak(): void {
    this.peak = this.liveBytes;
  }

  // ---- device-side validation -------------------------------------------------------------------

  /**
   * Registers a validation message for a kernel and returns its code and the error storage to bind
   * as an extra output. WGSL: see `REPORT_WGSL`; the message gets ": got <value>" appended.
   */
  validation(message: string): { code: number; err: GpuStorage } {
    if (!this.errorBuf) {
      // Backend-internal: not a user tensor, so not counted in memory().
      const buffer = this.device.createBuffer({
        size: 16,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      this.errorBuf = new GpuStorage(this, "i32", 4, buffer, this.nextId++);
      this.device.queue.writeBuffer(buffer, 0, new Uint32Array(4));
    }
    let code = this.checkCodes.get(message);
    if (code === undefined) {
      this.checkMessages.push(message);
      code = this.checkMessages.length;
      this.checkCodes.set(message, code);
    }
    this.checksPending = true;
    return { code, err: this.errorBuf };
  }

  private async readErrors(staging: GPUBuffer): Promise<void> {
    await staging.mapAsync(GPUMapMode.READ, 0, 16);
    const [code, value] = new Int32Array(staging.getMappedRange(0, 16).slice(0));
    staging.unmap();
    staging.destroy();
    if (code === 0) return;
    const message = this.checkMessages[code - 1] ?? "a kernel reported invalid input";
    this.device.queue.writeBuffer(this.errorBuf!.buffer, 0, new Uint32Array(4));
    this.checkCodes.clear();
    this.checkMessages.length = 0;
    throw new IndexError(`${message}: got ${value}`);
  }

  // ---- dispatch --------------------------------------------------------------------------------

  private pipelineFor(d: Dispatch): PipelineEntry {
    // A key names one shader, and a shader fixes its bindings: the key alone finds the pipeline.
    const key = d.key;
    const hit = this.pipelines.get(key);
    if (hit) return hit;
    const layoutKey = `${d.inputs.length}r${d.outputs.length}w`;
    let layout = this.layouts.get(layoutKey);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } }];
      for (let i = 0; i < d.inputs.length + d.outputs.length; i++)
        entries.push({
          binding: i + 1,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: i < d.inputs.length ? "read-only-storage" : "storage" },
        });
      const bgl = this.device.createBindGroupLayout({ entries });
      layout = { bgl, pipelineLayout: this.device.createPipelineLayout({ bindGroupLayouts: [bgl] }), key: layoutKey };
      this.layouts.set(layoutKey, layout);
    }
    const code = hoistDirectives(d.wgsl());
    if (debug && process.env.BALORA_DEBUG === "2") console.error(`[balora] compile ${d.key}\n${code}`);
    const module = this.device.createShaderModule({ code, label: d.key });
    const pipeline = this.device.createComputePipeline({
      layout: layout.pipelineLayout,
      compute: { module, entryPoint: "main" },
      label: d.key,
    });
    this.counters.pipelinesCompiled++;
    const entry = { pipeline, layout, key };
    this.pipelines.set(key, entry);
    return entry;
  }

  private bindGroupFor(layout: LayoutEntry, d: Dispatch, slot: ParamSlot): GPUBindGroup {
    let key = `${layout.key}:${slot.id}`;
    for (const s of d.inputs) key += bindingKey(s);
    for (const s of d.outputs) key += bindingKey(s);
    let bg = this.bindGroups.get(key);
    if (!bg) {
      const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: slot.buffer, offset: slot.offset, size: UNIFORM_BLOCK } }];
      [...d.inputs, ...d.outputs].forEach((s, i) => entries.push({ binding: i + 1, resource: this.resource(d, s) }));
      bg = this.device.createBindGroup({ layout: layout.bgl, entries });
      this.counters.bindGroupsCreated++;
      if (this.bindGroups.size > 8192) this.bindGroups = new Map();
      this.bindGroups.set(key, bg);
    }
    return bg;
  }

  /** A whole buffer, or a window of it; refuses whole storages above the binding limit, naming the kernel. */
  private resource(d: Dispatch, b: Binding): GPUBufferBinding {
    if ("storage" in b) return { buffer: (b.storage as GpuStorage).buffer, offset: b.byteOffset, size: b.byteLength };
    const s = b as GpuStorage;
    const bytes = storageBytes(s.numel, s.dtype);
    const max = this.limits.maxStorageBufferBindingSize;
    if (bytes > max)
      throw new DeviceError(
        `${d.key.split(":")[0]}: a ${s.dtype} tensor of ${s.numel} elements (${bytes} bytes) is above this adapter's ` +
          `maxStorageBufferBindingSize (${max} bytes), and this op does not split its operands yet; ` +
          "use smaller tensors or a GPU with larger bindings",
      );
    return { buffer: s.buffer, offset: 0, size: bytes };
  }

  /** The slot holding these params (packed u32 | i32 | f32 words), created and written on first use. */
  private paramSlot(params: Params | undefined): ParamSlot {
    let w = 0;
    for (const k in params?.u) this.scratchU32[w++] = params.u[k];
    for (const k in params?.i) this.scratchI32[w++] = params.i[k];
    for (const k in params?.f) this.scratchF32[w++] = params.f[k];
    if (w * 4 > UNIFORM_BLOCK) throw new Error(`internal: too many params (${w})`);
    let h = 0x811c9dc5 ^ w;
    for (let k = 0; k < w; k++) h = Math.imul(h ^ this.scratchU32[k], 0x01000193);
    const list = this.slots.get(h);
    if (list) {
      outer: for (const slot of list) {
        if (slot.words.length !== w) continue;
        for (let k = 0; k < w; k++) if (slot.words[k] !== this.scratchU32[k]) continue outer;
        return slot;
      }
    }
    const chunk = Math.floor(this.slotCount / SLOTS_PER_CHUNK);
    if (chunk === this.paramChunks.length)
      this.paramChunks.push(this.device.createBuffer({ size: CHUNK_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST }));
    const slot: ParamSlot = {
      id: this.nextSlotId++,
      buffer: this.paramChunks[chunk],
      offset: (this.slotCount % SLOTS_PER_CHUNK) * UNIFORM_BLOCK,
      words: this.scratchU32.slice(0, w),
    };
    this.slotCount++;
    // A new slot is written once and never changes, so queue order cannot hurt earlier commands.
    if (w > 0) this.device.queue.writeBuffer(slot.buffer, slot.offset, this.scratch, 0, w * 4);
    if (list) list.push(slot);
    else this.slots.set(h, [slot]);
    return slot;
  }

  /** Drops the slot table when it grew too large; only safe with nothing left unsubmitted. */
  private maybeResetSlots(): void {
    if (this.slotCount < MAX_SLOTS) return;
    this.slots = new Map();
    this.slotCount = 0;
    this.bindGroups = new Map();
  }

  dispatch(d: Dispatch): void {
    this.checkAlive();
    const grid = typeof d.grid === "number" ? grid1d(d.grid) : d.grid;
    if (grid[0] === 0 || grid[1] === 0 || grid[2] === 0) return;
    const entry = this.pipelineFor(d);
    const bg = this.bindGroupFor(entry.layout, d, this.paramSlot(d.params));
    if (debug || this.profiled) {
      this.timedDispatch(d, entry, bg, grid);
      return;
    }
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) {
      this.pass = this.encoder.beginComputePass();
      this.passPipeline = null;
    }
    if (this.passPipeline !== entry.pipeline) {
      this.pass.setPipeline(entry.pipeline);
      this.passPipeline = entry.pipeline;
    }
    this.pass.setBindGroup(0, bg);
    this.pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    this.counters.dispatches++;
    if (++this.dispatchesInBatch >= this.submitEvery) this.flush();
  }

  /** Copies bytes between storages, in stream order with the dispatches. */
  copy(src: Storage, srcByte: number, dst: Storage, dstByte: number, bytes: number): void {
    this.checkAlive();
    if (bytes === 0) return;
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    this.encoder.copyBufferToBuffer((src as GpuStorage).buffer, srcByte, (dst as GpuStorage).buffer, dstByte, bytes);
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** Submits everything encoded so far. Buffers released meanwhile become reusable. */
  flush(): void {
    this.endPass();
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.counters.submits++;
      this.encoder = null;
    }
    this.dispatchesInBatch = 0;
    for (const b of this.pendingRelease) this.toPool(b);
    this.pendingRelease = [];
    this.maybeResetSlots();
  }

  async read(storage: Storage, offset: number, numel: number): Promise<Float32Array | Int32Array> {
    const s = storage as GpuStorage;
    const half = s.dtype === "f16" || s.dtype === "bf16";
    const eb = half ? 2 : 4;
    const startByte = Math.floor((offset * eb) / 4) * 4;
    const endByte = Math.ceil(((offset + numel) * eb) / 4) * 4;
    const raw = await this.readBytes(s, startByte, endByte - startByte);
    if (!half) return s.dtype === "i32" ? new Int32Array(raw) : new Float32Array(raw);
    const bits = new Uint16Array(raw, (offset - startByte / 2) * 2, numel);
    return s.dtype === "bf16" ? bf16ToFloat32(bits) : f16ToFloat32(bits);
  }

  /** Reads raw bytes (multiple of 4, 4-aligned) of a storage. The only sync point with the GPU. */
  async readBytes(s: GpuStorage, byteOffset: number, byteLength: number): Promise<ArrayBuffer> {
    this.checkAlive();
    if (byteLength === 0) return new ArrayBuffer(0);
    const size = bucketBytes(byteLength);
    const staging =
      this.stagingPool.get(size)?.pop() ?? this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    this.encoder.copyBufferToBuffer(s.buffer, byteOffset, staging, 0, byteLength);
    const errStaging = this.takeErrorCheck();
    this.flush();
    try {
      if (errStaging) await this.readErrors(errStaging);
      await staging.mapAsync(GPUMapMode.READ, 0, byteLength);
    } catch (e) {
      if (e instanceof IndexError) {
        this.returnStaging(size, staging);
        throw e;
      }
      this.checkAlive();
      throw new DeviceError(`WebGPU readback failed: ${(e as Error).message}`);
    }
    const out = staging.getMappedRange(0, byteLength).slice(0);
    staging.unmap();
    this.returnStaging(size, staging);
    this.checkAlive();
    return out;
  }

  private returnStaging(size: number, staging: GPUBuffer): void {
    if (staging.mapState === "mapped") staging.unmap();
    const list = this.stagingPool.get(size);
    if (list) list.push(staging);
    else this.stagingPool.set(size, [staging]);
  }

  /** Encodes a copy of the validation flags if any validating kernel ran since the last check. */
  private takeErrorCheck(): GPUBuffer | null {
    if (!this.checksPending || !this.errorBuf) return null;
    this.checksPending = false;
    const st = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    this.encoder.copyBufferToBuffer(this.errorBuf.buffer, 0, st, 0, 16);
    return st;
  }

  async sync(): Promise<void> {
    const errStaging = this.takeErrorCheck();
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    if (errStaging) await this.readErrors(errStaging);
    this.checkAlive();
  }

  /** Releases the device; the process can exit afterwards. */
  destroy(): void {
    this.flush();
    this.trimPool();
    this.device.destroy();
  }

  // ---- profiling and BALORA_DEBUG: one pass per dispatch with timestamps ------------------------

  private profiled: { entries: ProfileEntry[]; pending: Promise<void>[] } | null = null;

  /**
   * Times every dispatch from now on (one pass each, with GPU timestamps, so slower than normal
   * execution); `stopProfile()` returns the entries. Needs the adapter's "timestamp-query" feature.
   */
  startProfile(): void {
    if (!this.device.features.has("timestamp-query")) throw new DeviceError("startProfile: this adapter has no timestamp-query feature");
    this.flush();
    this.profiled = { entries: [], pending: [] };
  }

  /** Ends profiling: the GPU time of each dispatch since `startProfile()`, in submission order. */
  async stopProfile(): Promise<ProfileEntry[]> {
    const p = this.profiled;
    if (!p) throw new DeviceError("stopProfile: startProfile() was not called");
    this.profiled = null;
    await this.sync();
    await Promise.all(p.pending);
    return p.entries;
  }

  private timedDispatch(d: Dispatch, entry: PipelineEntry, bg: GPUBindGroup, grid: [number, number, number]): void {
    this.flush();
    const hasTs = this.device.features.has("timestamp-query");
    const enc = this.device.createCommandEncoder();
    const qs = hasTs ? this.device.createQuerySet({ type: "timestamp", count: 2 }) : null;
    const pass = enc.beginComputePass(
      qs ? { timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {},
    );
    pass.setPipeline(entry.pipeline);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    pass.end();
    let resolve: GPUBuffer | null = null;
    let read: GPUBuffer | null = null;
    if (qs) {
      resolve = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
      read = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      enc.resolveQuerySet(qs, 0, 2, resolve, 0);
      enc.copyBufferToBuffer(resolve, 0, read, 0, 16);
    }
    this.device.queue.submit([enc.finish()]);
    this.counters.dispatches++;
    this.counters.submits++;
    const shapes = [...d.inputs, ...d.outputs]
      .map((b) => ("storage" in b ? `${b.storage.dtype}@${b.byteOffset}+${b.byteLength}` : `${b.dtype}[${b.numel}]`))
      .join(" ");
    const line = `[balora] ${d.key.split("|")[0]} grid=${grid.join("x")} ${shapes}`;
    if (!read) {
      if (debug) console.error(line);
      return;
    }
    const r = read;
    const record = this.profiled;
    const entry0: ProfileEntry = {
      op: d.key.split(":")[0],
      key: d.key.split("|")[0],
      tag: profileTag(),
      ns: 0,
      ...(d.flops ? { flops: d.flops } : {}),
    };
    record?.entries.push(entry0);
    const done = r.mapAsync(GPUMapMode.READ).then(() => {
      const t = new BigUint64Array(r.getMappedRange());
      const ns = Number(t[1] - t[0]);
      entry0.ns = ns;
      const gf = d.flops ? ` ${(d.flops / ns).toFixed(2)} GFLOP/s` : "";
      if (debug) console.error(`${line} ${(ns / 1000).toFixed(1)}us${gf}`);
      r.destroy();
      resolve?.destroy();
      qs?.destroy();
    });
    record?.pending.push(done);
  }
}

/** Encodes numbers as the bytes of a dtype's GPU storage (16-bit types packed, padded to 4 bytes). */
export function encodeValues(dtype: DType, values: ArrayLike<number>): ArrayBuffer {
  const n = values.length;
  const bytes = storageBytes(n, dtype);
  if (dtype === "f32") {
    const out = new Float32Array(bytes / 4);
    out.set(values);
    return out.buffer;
  }
  if (dtype === "i32") {
    const out = new Int32Array(bytes / 4);
    out.set(values);
    return out.buffer;
  }
  const out = new Uint16Array(bytes / 2);
  const f = Float32Array.from(values);
  out.set(dtype === "bf16" ? float32ToBf16(f) : float32ToF16(f));
  return out.buffer;
}
