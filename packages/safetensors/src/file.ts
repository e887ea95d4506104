// Reading one .safetensors file without loading it whole: the header is read and checked on open,
// then each tensor is read on demand from its ByteSource (positional reads, blob slices, ranges).
import { type Dtype, type DtypeArrays, arrayFromBytes } from "./dtypes.js";
import { quote } from "./errors.js";
import { HEADER_LENGTH_BYTES, type TensorInfo, parseHeader, readHeaderLength } from "./header.js";
import { type ByteSource, type FileInput, type Platform, bytesSource, resolveFile } from "./source.js";

/** A tensor read from a file: `data` is the dtype's typed array (see DtypeArrays). */
export type Tensor = { [D in Dtype]: { name: string; dtype: D; shape: number[]; data: DtypeArrays[D] } }[Dtype];

export class SafetensorsFile implements AsyncIterable<Tensor> {
  /** `__metadata__` of the file, or undefined when it has none. */
  readonly metadata: Readonly<Record<string, string>> | undefined;
  /** Tensor names in the order their data is stored. */
  readonly names: readonly string[];
  private readonly byName: ReadonlyMap<string, TensorInfo>;

  private constructor(
    /** The file's path, URL or label (ByteSource.label, parseSafetensors' label), as used in error messages. */
    readonly path: string,
    private readonly source: ByteSource,
    private readonly dataStart: number,
    metadata: Readonly<Record<string, string>> | undefined,
    tensors: TensorInfo[],
  ) {
    this.metadata = metadata;
    this.names = tensors.map((t) => t.name);
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  /** @internal Reads and validates the header; the source is closed if that fails. */
  static async load(source: ByteSource, path: string): Promise<SafetensorsFile> {
    try {
      const prefix = await source.read(0, Math.min(HEADER_LENGTH_BYTES, source.size));
      const n = readHeaderLength(prefix, source.size, path);
      const dataStart = HEADER_LENGTH_BYTES + n;
      const header = parseHeader(await source.read(HEADER_LENGTH_BYTES, n), source.size - dataStart, path);
      return new SafetensorsFile(path, source, dataStart, header.metadata, header.tensors);
    } catch (e) {
      await source.close();
      throw e;
    }
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The header entry of a tensor (dtype, shape, offsets); throws RangeError for an unknown name. */
  info(name: string): TensorInfo {
    const info = this.byName.get(name);
    if (!info) throw new RangeError(`${this.path}: no tensor named ${quote(name)}`);
    return info;
  }

  /** Reads one tensor's bytes (and nothing else) as its dtype's typed array. */
  async readTensor(name: string): Promise<Tensor> {
    const { dtype, shape, dataOffsets } = this.info(name);
    const [begin, end] = dataOffsets;
    const bytes = await this.source.read(this.dataStart + begin, end - begin);
    return { name, dtype, shape: [...shape], data: arrayFromBytes(dtype, bytes) } as Tensor;
  }

  /** Tensors one at a time, in data order (sequential reads); only the current one is held here. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Tensor> {
    for (const name of this.names) yield await this.readTensor(name);
  }

  async close(): Promise<void> {
    await this.source.close();
  }
}

/** Opens a .safetensors file and checks its header; tensors are read later, one at a time. */
export async function openSafetensorsWith(input: FileInput, platform: Platform): Promise<SafetensorsFile> {
  const source = await resolveFile(input, platform);
  return SafetensorsFile.load(source, source.label);
}

/**
 * Reads safetensors bytes already in memory (a fetched file, say). Tensors are views of `bytes`
 * where their offset allows, copies where the data is not aligned to the element size.
 */
export async function parseSafetensors(bytes: Uint8Array, label = "<bytes>"): Promise<SafetensorsFile> {
  return SafetensorsFile.load(bytesSource(bytes, label), label);
}
