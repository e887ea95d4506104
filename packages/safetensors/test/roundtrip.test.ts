// Round trips through files and memory for every dtype, scalars and zero-size tensors; lazy data;
// the writer's checks and atomicity; and unaligned data from a writer that does not pad.
import { readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  DTYPES,
  type Dtype,
  SafetensorsFormatError,
  type TensorArray,
  type TensorToWrite,
  bytesPerElement,
  openSafetensors,
  parseSafetensors,
  writeSafetensors,
} from "../src/index.js";
import { arrayFromBytes } from "../src/dtypes.js";
import { assemble, concat, pattern, tempDir } from "./helpers.js";

const dir = await tempDir();

/** A typed array of `dtype` with `numel` elements of deterministic content. */
function sample(dtype: Dtype, numel: number, seed: number): TensorArray {
  const size = bytesPerElement(dtype);
  const bytes = pattern(numel * size, seed);
  if (dtype === "BOOL") bytes.forEach((b, i) => (bytes[i] = b & 1));
  return arrayFromBytes(dtype, bytes);
}

const expectedArrayType: Record<Dtype, string> = {
  F64: "Float64Array",
  F32: "Float32Array",
  F16: "Uint16Array",
  BF16: "Uint16Array",
  I64: "BigInt64Array",
  I32: "Int32Array",
  I16: "Int16Array",
  I8: "Int8Array",
  U8: "Uint8Array",
  BOOL: "Uint8Array",
  U16: "Uint16Array",
  U32: "Uint32Array",
  U64: "BigUint64Array",
  F8_E4M3: "Uint8Array",
  F8_E5M2: "Uint8Array",
};

describe("round trips", () => {
  it("every dtype as a matrix, a scalar and a zero-size tensor, with metadata", async () => {
    const tensors = new Map<string, TensorToWrite>();
    DTYPES.forEach((dtype, seed) => {
      tensors.set(`${dtype}.matrix`, { dtype, shape: [3, 5], data: sample(dtype, 15, seed) } as TensorToWrite);
      tensors.set(`${dtype}.scalar`, { dtype, shape: [], data: sample(dtype, 1, seed + 100) } as TensorToWrite);
      tensors.set(`${dtype}.empty`, { dtype, shape: [4, 0, 2], data: sample(dtype, 0, 0) } as TensorToWrite);
    });
    const path = join(dir, "all.safetensors");
    await writeSafetensors(path, tensors, { metadata: { format: "pt", note: "round trip" } });
    for (const file of [await openSafetensors(path), await parseSafetensors(new Uint8Array(await readFile(path)), path)]) {
      expect(file.metadata).toEqual({ format: "pt", note: "round trip" });
      expect([...file.names].sort()).toEqual([...tensors.keys()].sort());
      for (const [name, source] of tensors) {
        const t = await file.readTensor(name);
        expect(t.name).toBe(name);
        expect(t.dtype).toBe(source.dtype);
        expect(t.shape).toEqual(source.shape);
        expect(t.data.constructor.name).toBe(expectedArrayType[source.dtype]);
        expect(t.data).toEqual(source.data);
      }
      await file.close();
    }
  });

  it("iterates tensors in data order, each in its own buffer of exactly its size", async () => {
    const path = join(dir, "iterate.safetensors");
    await writeSafetensors(path, {
      a: { dtype: "F32", shape: [1000], data: new Float32Array(1000).fill(1.5) },
      b: { dtype: "BF16", shape: [10], data: new Uint16Array(10).fill(0x3fc0) },
      c: { dtype: "F64", shape: [2], data: new Float64Array([1, 2]) },
    });
    const file = await openSafetensors(path);
    const seen: string[] = [];
    for await (const t of file) {
      seen.push(t.name);
      const info = file.info(t.name);
      expect(t.data.buffer.byteLength).toBe(info.dataOffsets[1] - info.dataOffsets[0]); // not a slice of a bigger read
    }
    expect(seen).toEqual(["c", "a", "b"]);
    expect(file.names).toEqual(seen);
    expect(file.has("a")).toBe(true);
    expect(() => file.info("zzz")).toThrow(RangeError);
    await expect(file.readTensor("zzz")).rejects.toThrow(/no tensor named "zzz"/);
    await file.close();
    await file.close(); // idempotent
  });

  it("accepts raw little-endian bytes and lazily produced data (sync or async)", async () => {
    const path = join(dir, "lazy.safetensors");
    const produced: string[] = [];
    const produce =
      <T>(name: string, data: T) =>
      () => {
        produced.push(name);
        return data;
      };
    await writeSafetensors(path, {
      raw: { dtype: "F32", shape: [2], data: new Uint8Array(new Float32Array([0.25, -8]).buffer) },
      lazy: { dtype: "I32", shape: [3], data: produce("lazy", new Int32Array([1, -2, 3])) },
      later: { dtype: "U8", shape: [2], data: produce("later", Promise.resolve(new Uint8Array([9, 8]))) },
    });
    expect(produced).toEqual(["lazy", "later"]); // in write order: I32 before U8
    const file = await openSafetensors(path);
    expect((await file.readTensor("raw")).data).toEqual(new Float32Array([0.25, -8]));
    expect((await file.readTensor("lazy")).data).toEqual(new Int32Array([1, -2, 3]));
    expect((await file.readTensor("later")).data).toEqual(new Uint8Array([9, 8]));
    await file.close();
  });

  it("reads in-memory bytes as views where aligned", async () => {
    const path = join(dir, "views.safetensors");
    await writeSafetensors(path, { x: { dtype: "F64", shape: [2], data: new Float64Array([3, 4]) } });
    const bytes = new Uint8Array(await readFile(path));
    const t = await (await parseSafetensors(bytes)).readTensor("x");
    expect(t.data.buffer).toBe(bytes.buffer);
  });
});

describe("unaligned data (a writer that does not pad its header)", () => {
  // 162 bytes of JSON, no padding: the F32 starts at file byte 8 + 162 + 3 = 173, the I64 at
  // 181, neither a multiple of its element size.
  const header =
    '{"ab":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},' +
    '"b":{"dtype":"F32","shape":[2],"data_offsets":[3,11]},' +
    '"c":{"dtype":"I64","shape":[],"data_offsets":[11,19]}}';
  const data = concat(
    new Uint8Array([7, 8, 9]),
    new Uint8Array(new Float32Array([1.5, -2]).buffer),
    new Uint8Array(new BigInt64Array([-5n]).buffer),
  );
  const bytes = assemble(header, data);

  it("is laid out as intended", () => {
    expect(header.length).toBe(162);
    expect([(8 + 162 + 3) % 4, (8 + 162 + 11) % 8]).toEqual([1, 5]);
  });

  it("copies misaligned tensors instead of viewing them, from memory", async () => {
    const file = await parseSafetensors(bytes);
    const b = await file.readTensor("b");
    const c = await file.readTensor("c");
    expect(b.data).toEqual(new Float32Array([1.5, -2]));
    expect(c.data).toEqual(new BigInt64Array([-5n]));
    expect(b.data.buffer).not.toBe(bytes.buffer);
    expect(c.data.buffer).not.toBe(bytes.buffer);
    expect((await file.readTensor("ab")).data.buffer).toBe(bytes.buffer); // bytes are always aligned
  });

  it("reads them from a file", async () => {
    const path = join(dir, "unpadded.safetensors");
    await writeFile(path, bytes);
    const file = await openSafetensors(path);
    const all = [];
    for await (const t of file) all.push([t.name, Array.from(t.data as ArrayLike<number | bigint>)]);
    expect(all).toEqual([
      ["ab", [7, 8, 9]],
      ["b", [1.5, -2]],
      ["c", [-5n]],
    ]);
    await file.close();
  });
});

describe("writer checks", () => {
  const cases: [string, Record<string, TensorToWrite>, RegExp][] = [
    ["data size", { w: { dtype: "F32", shape: [2, 2], data: new Float32Array(3) } }, /tensor "w": F32 \[2,2\] needs 16 bytes, got 12/],
    [
      "array type",
      { w: { dtype: "F32", shape: [2], data: new Int32Array(2) as unknown as Float32Array } },
      /takes its typed array or a Uint8Array of raw bytes, not Int32Array/,
    ],
    ["dtype", { w: { dtype: "F4" as "F32", shape: [2], data: new Float32Array(2) } }, /tensor "w": unknown dtype "F4"/],
    ["shape", { w: { dtype: "F32", shape: [-1], data: new Float32Array(0) } }, /shape must be an array of non-negative integers/],
    ["fractional shape", { w: { dtype: "F32", shape: [1.5], data: new Float32Array(0) } }, /shape must be an array/],
    ["reserved name", { __metadata__: { dtype: "U8", shape: [], data: new Uint8Array(1) } }, /reserved/],
    ["lone surrogate", { "bad\ud800": { dtype: "U8", shape: [], data: new Uint8Array(1) } }, /lone UTF-16 surrogate/],
    ["lazy data size", { w: { dtype: "U8", shape: [2], data: () => new Uint8Array(5) } }, /needs 2 bytes, got 5/],
  ];
  for (const [what, tensors, message] of cases) {
    it(`rejects bad ${what} with a SafetensorsFormatError naming the file`, async () => {
      const path = join(dir, `bad-${what.replace(/ /g, "-")}.safetensors`);
      const error = await writeSafetensors(path, tensors).catch((e) => e);
      expect(error).toBeInstanceOf(SafetensorsFormatError);
      expect(error.message).toMatch(message);
      expect(error.message.startsWith(`${path}: `)).toBe(true);
    });
  }

  it("rejects non-string metadata values", async () => {
    const metadata = { epoch: 3 } as unknown as Record<string, string>;
    await expect(writeSafetensors(join(dir, "m.safetensors"), {}, { metadata })).rejects.toThrow(/metadata value of "epoch" is a number/);
  });

  it("never leaves a partial file: the old file stays, the temporary file is removed", async () => {
    const path = join(dir, "atomic.safetensors");
    await writeSafetensors(path, { old: { dtype: "U8", shape: [1], data: new Uint8Array([1]) } });
    const before = await readFile(path);
    const failing = {
      first: { dtype: "F64", shape: [1 << 16], data: new Float64Array(1 << 16) },
      second: { dtype: "U8", shape: [1], data: () => Promise.reject(new Error("producer failed")) },
    } satisfies Record<string, TensorToWrite>;
    await expect(writeSafetensors(path, failing)).rejects.toThrow("producer failed");
    expect(await readFile(path)).toEqual(before);
    expect((await readdir(dir)).filter((n) => n.includes("atomic"))).toEqual(["atomic.safetensors"]);
  });
});
