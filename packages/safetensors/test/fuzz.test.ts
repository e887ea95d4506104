// Seeded mutation fuzzing of the reader: byte flips, truncation, header-length edits, splices and
// JSON-aware edits of valid files. Only SafetensorsFormatError may come out, and whatever parses
// must be self-consistent (offsets tile the data exactly, every tensor reads back at its size).
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type SafetensorsFile, SafetensorsFormatError, bytesPerElement, openSafetensors, parseSafetensors } from "../src/index.js";
import { assemble, goldenPath, tempDir, u64le } from "./helpers.js";

/** mulberry32: small, seeded, deterministic. */
function random(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)] };
}
type Random = ReturnType<typeof random>;

const headerEnd = (b: Uint8Array) =>
  b.length >= 8 ? Math.min(b.length, 8 + Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true) & 0xffffffn)) : b.length;
const JSON_BYTES = [...'{}[]",:0123456789-.eE \\u'].map((c) => c.charCodeAt(0));

const MUTATIONS: ((b: Uint8Array, r: Random, other: Uint8Array) => Uint8Array)[] = [
  // flip bits in a few bytes, mostly in the header
  (b, r) => {
    const out = b.slice();
    for (let k = 1 + r.int(4); k > 0 && out.length > 0; k--)
      out[r.next() < 0.8 ? r.int(headerEnd(out)) : r.int(out.length)] ^= 1 << r.int(8);
    return out;
  },
  // overwrite a header byte with a JSON-significant character
  (b, r) => {
    const out = b.slice();
    if (out.length > 8) out[8 + r.int(headerEnd(out) - 8 || 1)] = r.pick(JSON_BYTES);
    return out;
  },
  // nudge a digit in the header (shapes and offsets)
  (b, r) => {
    const out = b.slice();
    const digits = [...out.subarray(8, headerEnd(out)).keys()].filter((i) => out[8 + i] >= 0x30 && out[8 + i] <= 0x39);
    if (digits.length > 0) out[8 + r.pick(digits)] = 0x30 + r.int(10);
    return out;
  },
  // truncate anywhere
  (b, r) => b.slice(0, r.int(b.length + 1)),
  // change the header length: small shifts, random values, huge values
  (b, r) => {
    const out = b.slice();
    if (out.length < 8) return out;
    const n = new DataView(out.buffer).getBigUint64(0, true);
    const choice = r.int(3);
    const value =
      choice === 0
        ? n + BigInt(r.int(17) - 8)
        : choice === 1
          ? BigInt(r.int(out.length + 16))
          : 2n ** BigInt(20 + r.int(44)) + BigInt(r.int(1000));
    out.set(u64le(value < 0n ? 0n : value & (2n ** 64n - 1n)));
    return out;
  },
  // splice a piece of another file (or of itself) in, replacing or inserting
  (b, r, other) => {
    const from = r.int(other.length);
    const piece = other.slice(from, from + 1 + r.int(64));
    const at = r.int(b.length + 1);
    const cut = r.next() < 0.5 ? piece.length : 0;
    const out = new Uint8Array(Math.max(0, b.length - Math.min(cut, b.length - at)) + piece.length);
    out.set(b.subarray(0, at));
    out.set(piece, at);
    out.set(b.subarray(Math.min(b.length, at + cut)), at + piece.length);
    return out;
  },
  // append or delete bytes at the end
  (b, r) =>
    r.next() < 0.5
      ? b.slice(0, Math.max(0, b.length - 1 - r.int(8)))
      : Uint8Array.from([...b, ...Array.from({ length: 1 + r.int(8) }, () => r.int(256))]),
];

/** Whatever parses must describe its data exactly and read back at the declared sizes. */
async function expectConsistent(file: SafetensorsFile, size: number) {
  const infos = file.names.map((n) => file.info(n));
  expect(new Set(file.names).size).toBe(file.names.length);
  let position = 0;
  for (const info of infos) {
    expect(info.dataOffsets[0]).toBe(position);
    position = info.dataOffsets[1];
    const t = await file.readTensor(info.name);
    const numel = info.shape.reduce((a, b) => a * b, 1);
    expect(t.data.byteLength).toBe(numel * bytesPerElement(info.dtype));
    expect(t.data.byteLength).toBe(info.dataOffsets[1] - info.dataOffsets[0]);
  }
  expect(position).toBeLessThanOrEqual(size);
}

async function check(bytes: Uint8Array, open: () => Promise<SafetensorsFile>): Promise<"ok" | "rejected"> {
  let file: SafetensorsFile;
  try {
    file = await open();
  } catch (e) {
    if (!(e instanceof SafetensorsFormatError))
      throw new Error(`unexpected ${String(e)} for bytes ${Buffer.from(bytes).toString("hex").slice(0, 400)}`);
    expect(e.message).not.toMatch(/[\r\n]/);
    return "rejected";
  }
  await expectConsistent(file, bytes.length);
  await file.close();
  return "ok";
}

const dir = await tempDir();
const seeds: Uint8Array[] = await Promise.all(
  ["mixed.safetensors", "all-dtypes.safetensors", "names.safetensors", "sharded/model-00004-of-00004.safetensors"].map(
    async (name) => new Uint8Array(await readFile(goldenPath(name))),
  ),
);
seeds.push(
  assemble(
    '{"ab":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"b":{"dtype":"F32","shape":[2],"data_offsets":[3,11]}}',
    new Uint8Array(11),
  ),
);

function mutant(r: Random): Uint8Array {
  let bytes = r.pick(seeds);
  for (let k = 1 + r.int(3); k > 0; k--) bytes = r.pick(MUTATIONS)(bytes, r, r.pick(seeds));
  return bytes;
}

describe("fuzzing the reader", () => {
  it("20000 in-memory mutants: only SafetensorsFormatError, and anything accepted is consistent", async () => {
    const r = random(20241128);
    const outcome = { ok: 0, rejected: 0 };
    for (let i = 0; i < 20000; i++) {
      const bytes = mutant(r);
      outcome[await check(bytes, () => parseSafetensors(bytes, "mutant"))]++;
    }
    // Both outcomes occur (mutations that keep a file valid: flips in tensor data, equal digits).
    expect(outcome.ok).toBeGreaterThan(100);
    expect(outcome.rejected).toBeGreaterThan(10000);
  });

  it("1000 mutants through real files (openSafetensors)", async () => {
    const r = random(7);
    const path = join(dir, "mutant.safetensors");
    for (let i = 0; i < 1000; i++) {
      const bytes = mutant(r);
      await writeFile(path, bytes);
      await check(bytes, () => openSafetensors(path));
    }
  });
});
