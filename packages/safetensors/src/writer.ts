// Producing a .safetensors file byte-identical to the reference writer: the header first, then each
// tensor's bytes in turn (data may be produced lazily, one tensor at a time), to a stream or to bytes.
import { type Dtype, type DtypeArrays, bytesOfArray, bytesPerElement, fmtShape, isArrayFor, isDtype, numelOf } from "./dtypes.js";
import { SafetensorsFormatError, quote } from "./errors.js";
import { type TensorLayout, encodeHeader, layoutTensors } from "./header.js";

type Bytes<D extends Dtype> = DtypeArrays[D] | Uint8Array;

/**
 * A tensor to write: its dtype's typed array (or raw little-endian bytes as a Uint8Array), or a
 * function returning one, called only when the writer reaches this tensor.
 */
export type TensorToWrite = {
  [D in Dtype]: { dtype: D; shape: readonly number[]; data: Bytes<D> | (() => Bytes<D> | Promise<Bytes<D>>) };
}[Dtype];

/** Tensors by name. A Map keeps its order; a plain object puts integer-like keys first. */
export type TensorsToWrite = ReadonlyMap<string, TensorToWrite> | Readonly<Record<string, TensorToWrite>>;

export interface WriteOptions {
  /** `__metadata__` (string values only); omitted from the header when undefined. */
  metadata?: Readonly<Record<string, string>>;
}

interface PlannedTensor extends TensorLayout {
  source: TensorToWrite;
}

/** @internal A file planned and checked before any byte is produced: its header and tensors in data order. */
export interface PreparedFile {
  header: Uint8Array;
  /** Header plus data. */
  byteLength: number;
  /** Writes the header, then each tensor's bytes in data order (lazy data produced one at a time). */
  emit(write: (bytes: Uint8Array) => Promise<void> | void): Promise<void>;
}

/** @internal Checks every tensor and lays the file out like the reference writer; `label` names it in errors. */
export function prepareSafetensors(tensors: TensorsToWrite, options: WriteOptions, label: string): PreparedFile {
  const planned = planTensors(tensors, label);
  const layout = layoutTensors(planned);
  const header = encodeHeader(layout, options.metadata, label);
  const byName = new Map(planned.map((t) => [t.name, t]));
  return {
    header,
    byteLength: header.byteLength + planned.reduce((sum, t) => sum + t.byteLength, 0),
    async emit(write) {
      await write(header);
      for (const { name } of layout) await write(await tensorBytes(byName.get(name)!, label));
    },
  };
}

/**
 * The bytes of a .safetensors file for `tensors`, exactly as the reference writer (Python
 * `save_file`) would write them: for a browser download, an upload, or parseSafetensors.
 */
export async function serializeSafetensors(tensors: TensorsToWrite, options: WriteOptions = {}): Promise<Uint8Array<ArrayBuffer>> {
  const file = prepareSafetensors(tensors, options, "<bytes>");
  const out = new Uint8Array(file.byteLength);
  let offset = 0;
  await file.emit((bytes) => {
    out.set(bytes, offset);
    offset += bytes.byteLength;
  });
  return out;
}

/** @internal Name, dtype, shape and byte length of every tensor, checked before anything is written. */
export function planTensors(tensors: TensorsToWrite, path: string): PlannedTensor[] {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors as Record<string, TensorToWrite>);
  return entries.map(([name, source]) => {
    const bad = (reason: string) => new SafetensorsFormatError(path, `tensor ${quote(name)}: ${reason}`);
    if (name === "__metadata__") throw bad("the name __metadata__ is reserved for metadata");
    const { dtype, shape } = (source ?? {}) as Partial<TensorToWrite>;
    if (!isDtype(dtype)) throw bad(`unknown dtype ${quote(String(dtype))}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad("shape must be an array of non-negative integers");
    }
    const numel = numelOf(shape);
    if (numel === undefined) throw bad(`shape ${fmtShape(shape)} is too large`);
    const planned = { name, dtype, shape: [...shape], byteLength: numel * bytesPerElement(dtype), source };
    if (typeof source.data !== "function") checkedBytes(planned, source.data, path);
    return planned;
  });
}

/** The tensor's bytes, produced now if its data is a function, checked against its shape. */
async function tensorBytes(t: PlannedTensor, path: string): Promise<Uint8Array> {
  const { data } = t.source;
  return checkedBytes(t, typeof data === "function" ? await data() : data, path);
}

function checkedBytes(t: PlannedTensor, data: unknown, path: string): Uint8Array {
  const at = `tensor ${quote(t.name)}: ${t.dtype} ${fmtShape(t.shape)}`;
  if (!isArrayFor(t.dtype, data)) {
    const got = ArrayBuffer.isView(data) ? data.constructor.name : typeof data;
    throw new SafetensorsFormatError(path, `${at} takes its typed array or a Uint8Array of raw bytes, not ${got}`);
  }
  if (data.byteLength !== t.byteLength) {
    throw new SafetensorsFormatError(path, `${at} needs ${t.byteLength} bytes, got ${data.byteLength}`);
  }
  return bytesOfArray(data);
}
