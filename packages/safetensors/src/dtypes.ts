// The dtypes this package reads and writes: element sizes, the typed array each is returned as, and
// the rank the reference writer sorts tensors by. Bytes become typed arrays here, and back.

/** Every dtype this package reads and writes (all whole-byte dtypes of the format but C64 and F8_E8M0). */
export const DTYPES = [
  "F64",
  "F32",
  "F16",
  "BF16",
  "I64",
  "I32",
  "I16",
  "I8",
  "U8",
  "BOOL",
  "U16",
  "U32",
  "U64",
  "F8_E4M3",
  "F8_E5M2",
] as const;
export type Dtype = (typeof DTYPES)[number];

/** The typed array each dtype is read as; 16- and 8-bit floats come as their raw bits. */
export interface DtypeArrays {
  F64: Float64Array;
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
  U16: Uint16Array;
  U32: Uint32Array;
  U64: BigUint64Array;
  F8_E4M3: Uint8Array;
  F8_E5M2: Uint8Array;
}
export type TensorArray = DtypeArrays[Dtype];

type ArrayConstructorFor<A> = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): A; readonly BYTES_PER_ELEMENT: number };

const ARRAY_TYPES: { [D in Dtype]: ArrayConstructorFor<DtypeArrays[D]> } = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
  U16: Uint16Array,
  U32: Uint32Array,
  U64: BigUint64Array,
  F8_E4M3: Uint8Array,
  F8_E5M2: Uint8Array,
};

/**
 * The reference `Dtype` enum in declaration order (safetensors/src/tensor.rs, "They MUST be in
 * increasing alignment order"); its derived `Ord` is what the writer sorts by, descending.
 */
const REFERENCE_DTYPE_ORDER = [
  "BOOL",
  "F4",
  "F6_E2M3",
  "F6_E3M2",
  "U8",
  "I8",
  "F8_E5M2",
  "F8_E4M3",
  "F8_E8M0",
  "I16",
  "U16",
  "F16",
  "BF16",
  "I32",
  "U32",
  "F32",
  "C64",
  "F64",
  "I64",
  "U64",
];
/** Dtypes of the format this package recognises but does not read (sub-byte, complex, scale-only). */
const UNSUPPORTED_DTYPES = new Set(["F4", "F6_E2M3", "F6_E3M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64"]);

export function isDtype(value: unknown): value is Dtype {
  return typeof value === "string" && Object.hasOwn(ARRAY_TYPES, value);
}

export function isUnsupportedDtype(value: string): boolean {
  return UNSUPPORTED_DTYPES.has(value);
}

export function bytesPerElement(dtype: Dtype): number {
  return ARRAY_TYPES[dtype].BYTES_PER_ELEMENT;
}

/** Position in the reference enum: the writer puts higher ranks first. */
export function writerRank(dtype: Dtype): number {
  return REFERENCE_DTYPE_ORDER.indexOf(dtype);
}

/** Whether `data` is the typed array `dtype` is read as (any Uint8Array is also accepted as raw bytes). */
export function isArrayFor(dtype: Dtype, data: unknown): data is TensorArray | Uint8Array {
  return data instanceof ARRAY_TYPES[dtype] || data instanceof Uint8Array;
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function assertLittleEndianHost(): void {
  if (!HOST_IS_LITTLE_ENDIAN) throw new Error("@balora/safetensors needs a little-endian host (typed arrays use host byte order)");
}

/**
 * Little-endian bytes as the dtype's typed array: a view when `bytes` sits at a multiple of the
 * element size in its buffer, else a copy (typed arrays cannot be unaligned).
 */
export function arrayFromBytes<D extends Dtype>(dtype: D, bytes: Uint8Array): DtypeArrays[D] {
  assertLittleEndianHost();
  const type = ARRAY_TYPES[dtype] as ArrayConstructorFor<DtypeArrays[D]>;
  const size = type.BYTES_PER_ELEMENT;
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return new type(aligned.buffer, aligned.byteOffset, aligned.byteLength / size);
}

/** The bytes of a typed array, as a view. */
export function bytesOfArray(data: ArrayBufferView): Uint8Array {
  assertLittleEndianHost();
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Number of elements of a shape ([] is a scalar: 1), or undefined past Number.MAX_SAFE_INTEGER. */
export function numelOf(shape: readonly number[]): number | undefined {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const dim of shape) {
    n *= dim;
    if (n > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return n;
}

export const fmtShape = (shape: readonly number[]): string => `[${shape.join(",")}]`;
