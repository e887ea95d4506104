// Every way a file can be malformed gives one SafetensorsFormatError whose one-line message names
// the file and the reason; checked through real files (openSafetensors) and memory (parseSafetensors).
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SafetensorsFormatError, openSafetensors, parseSafetensors } from "../src/index.js";
import { ascii, assemble, concat, tempDir, u64le } from "./helpers.js";

const dir = await tempDir();
const entry = (dtype: string, shape: unknown, offsets: unknown) =>
  `{"dtype":${JSON.stringify(dtype)},"shape":${JSON.stringify(shape)},"data_offsets":${JSON.stringify(offsets)}}`;
const u8 = (begin: number, end: number) => entry("U8", [end - begin], [begin, end]);
const zeros = (n: number) => new Uint8Array(n);

const CASES: [string, Uint8Array, RegExp][] = [
  ["empty file", zeros(0), /truncated file: 0 bytes, too short for the 8-byte header length/],
  ["5-byte file", zeros(5), /truncated file: 5 bytes/],
  ["header length past EOF", concat(u64le(100), ascii("{}")), /header length 100 runs past the end of the file \(10 bytes\)/],
  ["header length over 100 MB", concat(u64le(100_000_001), ascii("{}")), /header length 100000001 exceeds the 100000000-byte limit/],
  ["header length 2^64-1", concat(u64le(2n ** 64n - 1n), ascii("{}")), /header length 18446744073709551615 exceeds/],
  ["invalid UTF-8", concat(u64le(4), new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /header is not valid UTF-8/],
  ["header not an object", assemble("[1, 2]"), /header is not a JSON object \(it must start with '\{'\)/],
  ["leading space", assemble(" {}"), /must start with '\{'/],
  ["bad JSON", assemble('{"a":'), /header is not valid JSON/],
  ["JSON then garbage", assemble("{} x"), /header is not valid JSON/],
  ["metadata not an object", assemble('{"__metadata__":["pt"]}'), /__metadata__ must be an object of strings/],
  ["metadata null", assemble('{"__metadata__":null}'), /__metadata__ must be an object of strings/],
  ["non-string metadata value", assemble('{"__metadata__":{"epoch":3}}'), /__metadata__ value of "epoch" is a number, not a string/],
  ["entry not an object", assemble('{"w":5}'), /tensor "w": entry is a number, not an object with dtype, shape, data_offsets/],
  ["missing field", assemble('{"w":{"dtype":"U8","data_offsets":[0,0]}}'), /tensor "w": missing field shape/],
  ["unexpected field", assemble(`{"w":${u8(0, 1).slice(0, -1)},"extra":1}}`, zeros(1)), /tensor "w": unexpected field "extra"/],
  ["unknown dtype", assemble(`{"w":${entry("Q8", [1], [0, 1])}}`, zeros(1)), /tensor "w": unknown dtype "Q8"/],
  ["unsupported dtype", assemble(`{"w":${entry("F4", [2], [0, 1])}}`, zeros(1)), /tensor "w": dtype F4 is not supported/],
  [
    "dtype not a string",
    assemble('{"w":{"dtype":4,"shape":[],"data_offsets":[0,4]}}', zeros(4)),
    /tensor "w": dtype is a number, not a string/,
  ],
  ["negative dim", assemble(`{"w":${entry("U8", [-1], [0, 0])}}`), /tensor "w": shape must be an array of non-negative integers/],
  ["fractional dim", assemble(`{"w":${entry("U8", [1.5], [0, 0])}}`), /shape must be an array/],
  ["shape not an array", assemble(`{"w":${entry("U8", 3, [0, 3])}}`, zeros(3)), /shape must be an array/],
  ["one offset", assemble(`{"w":${entry("U8", [0], [0])}}`), /tensor "w": data_offsets must be \[begin, end\], two non-negative integers/],
  ["string offset", assemble(`{"w":${entry("U8", [1], [0, "1"])}}`, zeros(1)), /data_offsets must be \[begin, end\]/],
  ["negative offset", assemble(`{"w":${entry("U8", [1], [-1, 0])}}`), /data_offsets must be/],
  ["end before begin", assemble(`{"w":${entry("U8", [0], [4, 0])}}`, zeros(4)), /tensor "w": data_offsets \[4,0\]: end is before begin/],
  [
    "shape x dtype != bytes",
    assemble(`{"w":${entry("F32", [2], [0, 4])}}`, zeros(4)),
    /tensor "w": F32 \[2\] needs 8 bytes but data_offsets \[0,4\] hold 4/,
  ],
  ["overflowing shape", assemble(`{"w":${entry("F32", [2 ** 40, 2 ** 40], [0, 4])}}`, zeros(4)), /needs too many bytes/],
  ["overlap", assemble(`{"a":${u8(0, 8)},"b":${u8(4, 12)}}`, zeros(12)), /tensor "b": data_offsets \[4,12\] overlap tensor "a" \[0,8\]/],
  ["same offsets twice", assemble(`{"a":${u8(0, 4)},"b":${u8(0, 4)}}`, zeros(4)), /overlap tensor/],
  [
    "hole",
    assemble(`{"a":${u8(0, 4)},"b":${u8(8, 12)}}`, zeros(12)),
    /tensor "b": data_offsets \[8,12\] leave a hole: bytes \[4,8\) belong to no tensor/,
  ],
  ["not starting at 0", assemble(`{"a":${u8(4, 8)}}`, zeros(8)), /leave a hole: bytes \[0,4\)/],
  [
    "offsets past the data",
    assemble(`{"a":${u8(0, 8)}}`, zeros(6)),
    /tensor "a": data_offsets \[0,8\] run past the end of the data \(6 bytes\): truncated file\?/,
  ],
  ["trailing bytes", assemble(`{"a":${u8(0, 4)}}`, zeros(7)), /3 trailing bytes after the last tensor/],
  ["trailing bytes, no tensors", assemble("{}", zeros(1)), /1 trailing bytes after the last tensor/],
  ["duplicate tensor name", assemble(`{"a":${u8(0, 4)},"a":${u8(0, 4)}}`, zeros(4)), /duplicate tensor name "a" in header/],
  ["duplicate via escape", assemble(`{"a":${u8(0, 4)},"\\u0061":${u8(0, 4)}}`, zeros(4)), /duplicate tensor name "a"/],
  ["duplicate metadata key", assemble('{"__metadata__":{"k":"1","k":"2"}}'), /duplicate key "k" inside "__metadata__"/],
  [
    "duplicate field",
    assemble('{"w":{"dtype":"U8","dtype":"U8","shape":[],"data_offsets":[0,1]}}', zeros(1)),
    /duplicate key "dtype" inside "w"/,
  ],
];

describe("malformed files", () => {
  for (const [what, bytes, reason] of CASES) {
    it(`${what}: one-line SafetensorsFormatError naming the file`, async () => {
      const path = join(dir, `${what.replace(/\W+/g, "-")}.safetensors`);
      await writeFile(path, bytes);
      for (const error of [await openSafetensors(path).catch((e) => e), await parseSafetensors(bytes, path).catch((e) => e)]) {
        expect(error).toBeInstanceOf(SafetensorsFormatError);
        expect(error.message).toMatch(reason);
        expect(error.message.startsWith(`${path}: `)).toBe(true);
        expect(error.file).toBe(path);
        expect(error.message).not.toMatch(/[\r\n]/);
      }
    });
  }

  it("accepts the edge cases the format allows", async () => {
    const ok = [
      assemble("{}"), // no tensors
      assemble("{}      "), // right-padded with spaces
      assemble(`{"s":${entry("F64", [], [0, 8])}}`, zeros(8)), // scalar
      assemble(`{"z":${entry("F32", [3, 0], [0, 0])},"a":${u8(0, 2)}}`, zeros(2)), // zero-size at offset 0
      assemble(`{"b":${u8(2, 4)},"a":${u8(0, 2)}}`, zeros(4)), // entries out of offset order
      assemble('{"__metadata__":{}}'),
    ];
    for (const bytes of ok) await expect(parseSafetensors(bytes)).resolves.toBeDefined();
  });

  it("reports a file that shrinks after opening", async () => {
    const path = join(dir, "shrinks.safetensors");
    await writeFile(path, assemble(`{"a":${u8(0, 16)}}`, zeros(16)));
    const file = await openSafetensors(path);
    await writeFile(path, assemble(`{"a":${u8(0, 16)}}`, zeros(4)));
    await expect(file.readTensor("a")).rejects.toThrow(/file ended at byte .* truncated while open\?/);
    await file.close();
  });
});
