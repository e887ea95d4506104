// Byte-exact writing: hand-spelled fixtures from the format rules, and golden files written by the
// reference implementation (safetensors 0.8.0's Rust writer via Python; test/golden/make_golden.py).
//
// Rules, as read in huggingface/safetensors safetensors/src/tensor.rs @000a16f4 (line numbers of
// that commit; a newer copy with F4/F6/F8_E8M0/C64 has the same logic, padding written as
// `next_multiple_of(8)`). Python's `safetensors.torch.save_file` is `serialize_file(...)` over
// the same Rust code (py_src/safetensors/torch.py l.322-324 in the 0.8.0 wheel).
//  R1 tensors sorted by descending Dtype, then by name                    `prepare`, l.176-181
//  R2 offsets packed from 0 in that order, end = begin + data_len          l.185-194
//  R3 header = serde_json::to_string(&Metadata), compact                   l.200
//  R4 padded with b' ' to a multiple of 8; N = padded length               l.201-205
//  R5 file = N as u64 little-endian, header, tensor bytes in order         l.263-268 (serialize_to_file)
//  R6 `__metadata__` first (only when given), then tensors in offset order l.478-484 (impl Serialize)
//  R7 entry keys in field order dtype, shape, data_offsets [begin,end]     l.659-666 (struct TensorInfo)
//  R8 Dtype order BOOL<U8<I8<F8_E5M2<F8_E4M3<I16<U16<F16<BF16<I32<U32<F32<F64<I64<U64
//     (derived Ord of `enum Dtype`, l.668-704; newer versions add F4/F6/F8_E8M0/C64 in between)
//  R9 names compare as Rust `String::cmp`: UTF-8 bytes, not UTF-16 code units
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type TensorToWrite, SafetensorsFormatError, openSafetensors, parseSafetensors, writeSafetensors } from "../src/index.js";
import { ascii, concat, goldenPath, hex, pattern, tempDir, u64le } from "./helpers.js";

const dir = await tempDir();
let fileCount = 0;
async function written(tensors: Record<string, TensorToWrite> | Map<string, TensorToWrite>, metadata?: Record<string, string>) {
  const path = join(dir, `out-${fileCount++}.safetensors`);
  await writeSafetensors(path, tensors, { metadata });
  return new Uint8Array(await readFile(path));
}

const MIXED: Record<string, TensorToWrite> = {
  w: { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
  b: { dtype: "BF16", shape: [3], data: new Uint16Array([0x3f80, 0x4000, 0xc040]) }, // 1, 2, -3
  step: { dtype: "I64", shape: [], data: new BigInt64Array([7n]) },
};

describe("byte-exact writer", () => {
  it("F32 [2,2] + BF16 [3] + I64 scalar + {format: pt}, spelled out by hand", async () => {
    // R1/R8: I64 ranks above F32, F32 above BF16, so the order is step, w, b (not the input order).
    // R6/R7: metadata first, each entry dtype-shape-data_offsets; R3: no spaces anywhere.
    const json =
      '{"__metadata__":{"format":"pt"},' +
      '"step":{"dtype":"I64","shape":[],"data_offsets":[0,8]},' + // R2: a scalar is 1 element
      '"w":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},' +
      '"b":{"dtype":"BF16","shape":[3],"data_offsets":[24,30]}}';
    expect(json.length).toBe(199);
    const expected = concat(
      u64le(200), // R4/R5: 199 bytes of JSON + 1 space = 200, 8 + 200 is a multiple of 8
      ascii(json),
      ascii(" "),
      hex("07 00 00 00 00 00 00 00"), // step = 7, i64 little-endian
      hex("0000803f 00000040 00004040 00008040"), // w = 1, 2, 3, 4 as f32
      hex("803f 0040 40c0"), // b = bf16 bits 0x3f80, 0x4000, 0xc040
    );
    expect(await written(MIXED, { format: "pt" })).toEqual(expected);
    // ...and that is what the reference writer produced for the same tensors.
    expect(new Uint8Array(await readFile(goldenPath("mixed.safetensors")))).toEqual(expected);
  });

  it("reproduces the reference implementation's own test vectors (tensor.rs test_serialization, test_empty)", async () => {
    // "attn.0" F32 [1,2,3] = 0..5, no metadata: 64 bytes of JSON, already a multiple of 8, no padding.
    const attn = await written({ "attn.0": { dtype: "F32", shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) } });
    expect([...attn.subarray(0, 8)]).toEqual([64, 0, 0, 0, 0, 0, 0, 0]);
    expect(new TextDecoder().decode(attn.subarray(8, 72))).toBe('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}');
    expect([...attn.subarray(72, 80)]).toEqual([0, 0, 0, 0, 0, 0, 128, 63]);
    // No tensors: "{}" + 6 spaces; with metadata {"framework": "pt"}: 40 bytes.
    expect([...(await written({}))]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const meta = await written({}, { framework: "pt" });
    expect(meta[0]).toBe(40);
    expect(new TextDecoder().decode(meta.subarray(8))).toBe('{"__metadata__":{"framework":"pt"}}     ');
  });

  it("matches the reference writer for every dtype, scalars and zero-size tensors (all-dtypes golden)", async () => {
    const golden = await parseSafetensors(new Uint8Array(await readFile(goldenPath("all-dtypes.safetensors"))));
    // Rebuild the tensors from the golden's own header and the generator's byte formula, in a
    // different insertion order, and write them: the bytes must come out identical.
    const shuffled = [...golden.names].reverse();
    const tensors = new Map<string, TensorToWrite>();
    for (const name of shuffled) {
      const t = await golden.readTensor(name);
      tensors.set(name, { dtype: t.dtype, shape: t.shape, data: t.data } as TensorToWrite);
    }
    expect(await written(tensors)).toEqual(new Uint8Array(await readFile(goldenPath("all-dtypes.safetensors"))));
    // R8 as observed in the reference output.
    expect(golden.names.map((n) => golden.info(n).dtype)).toEqual([
      "U64",
      "I64",
      "F64",
      "F32",
      "U32",
      "I32",
      "BF16",
      "F16",
      "U16",
      "I16",
      "F8_E4M3",
      "F8_E5M2",
      "I8",
      "U8",
      "BOOL",
    ]);
    const seeds = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2"];
    for (const name of golden.names) {
      const t = await golden.readTensor(name);
      const seed = seeds.indexOf(t.dtype);
      const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      const raw = pattern(bytes.length, seed);
      expect(bytes).toEqual(t.dtype === "BOOL" ? raw.map((b) => b & 1) : raw);
    }
  });

  it("escapes names and metadata like serde_json and orders names by UTF-8 bytes (names golden)", async () => {
    const names = ["0", "10", "9", 'a"b', "back\\slash", "new\nline", "ctl\x01\x1f\x7f", "ñ", "\uff00", "\u{1F600}", "\u2028", ""];
    // A Map keeps "10" before "9" and the empty name last; R9 puts "\uff00" before "\u{1F600}".
    const tensors = new Map<string, TensorToWrite>(names.map((n, i) => [n, { dtype: "U8", shape: [1], data: new Uint8Array([i]) }]));
    const bytes = await written(tensors, { 'k\t"é': "v\x00\u2029/\\" });
    expect(bytes).toEqual(new Uint8Array(await readFile(goldenPath("names.safetensors"))));
    const back = await parseSafetensors(bytes);
    expect(back.names).toEqual([
      "",
      "0",
      "10",
      "9",
      'a"b',
      "back\\slash",
      "ctl\x01\x1f\x7f",
      "new\nline",
      "ñ",
      "\u2028",
      "\uff00",
      "\u{1F600}",
    ]);
    expect(back.metadata).toEqual({ 'k\t"é': "v\x00\u2029/\\" });
  });

  it("writes {} metadata as valid JSON where safetensors 0.8.0 writes '{},\"__metadata__\":{}}'", async () => {
    // serde_json's serialize_map(Some(0)) emits "{}" at once (tensor.rs l.473-478: the length hint
    // counts metadata keys, 0 here), so the reference output with no tensors is not JSON; its
    // own reader rejects it, and so do we. We write the valid header instead.
    const reference = new Uint8Array(await readFile(goldenPath("empty-metadata.safetensors")));
    expect(new TextDecoder().decode(reference.subarray(8))).toBe('{},"__metadata__":{}}   ');
    await expect(parseSafetensors(reference)).rejects.toThrow(SafetensorsFormatError);
    const ours = await written({}, {});
    expect(new TextDecoder().decode(ours.subarray(8))).toBe('{"__metadata__":{}}     ');
    expect((await parseSafetensors(ours)).metadata).toEqual({});
    expect(await written({})).toEqual(new Uint8Array(await readFile(goldenPath("empty.safetensors"))));
  });

  it("pads every header so each tensor starts at a multiple of 8 in the file", async () => {
    for (const name of ["a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh"]) {
      const bytes = await written({ [name]: { dtype: "F64", shape: [1], data: new Float64Array([1]) } });
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      expect(n % 8).toBe(0);
      expect(bytes[8 + n - 1] === 0x20 || bytes[8 + n - 1] === 0x7d).toBe(true);
    }
  });

  it("leaves only the written files in the directory (no temporary files)", async () => {
    const names = await readdir(dir);
    expect(names.every((n) => /^out-\d+\.safetensors$/.test(n))).toBe(true);
    const reopened = await openSafetensors(join(dir, "out-0.safetensors"));
    expect(reopened.names).toEqual(["step", "w", "b"]);
    await reopened.close();
  });
});
