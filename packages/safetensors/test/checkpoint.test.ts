// Checkpoint directories: shard planning and naming as huggingface_hub does it, byte-identical
// shards and index (golden written by the reference), reading single and sharded, index errors.
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { planShards } from "../src/checkpoint.js";
import {
  DEFAULT_MAX_SHARD_SIZE,
  SafetensorsFormatError,
  type TensorToWrite,
  openCheckpoint,
  openSafetensors,
  saveCheckpoint,
  shardFileName,
  writeSafetensors,
} from "../src/index.js";
import { goldenPath, pattern, tempDir } from "./helpers.js";

const root = await tempDir();
let dirCount = 0;
const freshDir = () => join(root, `ckpt-${dirCount++}`);
const u8 = (n: number, fill = 1): TensorToWrite => ({ dtype: "U8", shape: [n], data: new Uint8Array(n).fill(fill) });
const sized = (...sizes: number[]) => sizes.map((byteLength, i) => ({ name: `t${i}`, byteLength }));
const names = (shards: { name: string }[][]) => shards.map((s) => s.map((t) => t.name));

describe("shard planning (huggingface_hub split_state_dict_into_shards_factory)", () => {
  it("fills shards in key order up to the limit, inclusive", () => {
    expect(names(planShards(sized(4, 4, 2, 5, 5), 10))).toEqual([
      ["t0", "t1", "t2"],
      ["t3", "t4"],
    ]);
    expect(names(planShards(sized(10, 1), 10))).toEqual([["t0"], ["t1"]]);
  });

  it("gives a tensor over the limit its own shard at once, before the open one", () => {
    // hub's docstring example: [6, 6, 2, 6, 2, 2] GB at 10 GB -> [6], [6+2], [6+2+2]
    expect(names(planShards(sized(6, 6, 2, 6, 2, 2), 10))).toEqual([["t0"], ["t1", "t2"], ["t3", "t4", "t5"]]);
    expect(names(planShards(sized(3, 20, 3), 10))).toEqual([["t1"], ["t0", "t2"]]);
  });

  it("keeps zero-size tensors in the open shard, and makes one empty shard of nothing", () => {
    expect(names(planShards(sized(10, 0, 0), 10))).toEqual([["t0", "t1", "t2"]]);
    expect(planShards([], 10)).toEqual([[]]);
  });

  it("names shards model-0000i-of-0000n, 1-based", () => {
    expect(shardFileName(1, 3)).toBe("model-00001-of-00003.safetensors");
    expect(shardFileName(12, 123)).toBe("model-00012-of-00123.safetensors");
    expect(DEFAULT_MAX_SHARD_SIZE).toBe(5_000_000_000);
  });
});

/** The tensors make_golden.py shards (same names, dtypes, shapes, bytes, key order). */
function goldenState(): Map<string, TensorToWrite> {
  const specs: [string, "BF16" | "F32" | "F16", number[]][] = [
    ["embed.weight", "BF16", [4, 5]],
    ["layers.0.q.weight", "F32", [2, 4]],
    ["layers.0.norm", "F32", [4]],
    ["lm_head.weight", "F32", [5, 6]],
    ["layers.1.q.weight", "BF16", [2, 4]],
    ["ñorm", "F16", [3]],
    ["bias", "F32", [0]],
  ];
  const size = { BF16: 2, F16: 2, F32: 4 };
  return new Map(
    specs.map(([name, dtype, shape], seed) => {
      const numel = shape.reduce((a, b) => a * b, 1);
      return [name, { dtype, shape, data: pattern(numel * size[dtype], seed) }];
    }),
  );
}

describe("saveCheckpoint", () => {
  it("writes shards and index byte-identical to huggingface_hub + safetensors (sharded golden)", async () => {
    const dir = freshDir();
    const saved = await saveCheckpoint(dir, goldenState(), { maxShardSize: 48, metadata: { note: "golden" } });
    const expected = (await readdir(goldenPath("sharded"))).sort();
    expect([...saved.files, saved.index].sort()).toEqual(expected);
    expect((await readdir(dir)).sort()).toEqual(expected);
    for (const name of expected) {
      expect(new Uint8Array(await readFile(join(dir, name))), name).toEqual(
        new Uint8Array(await readFile(join(goldenPath("sharded"), name))),
      );
    }
    const index = JSON.parse(await readFile(join(dir, "model.safetensors.index.json"), "utf8"));
    expect(index.metadata).toEqual({ total_size: 230, note: "golden" });
    expect(index.weight_map["lm_head.weight"]).toBe("model-00002-of-00004.safetensors");
  });

  it("writes one model.safetensors and no index when everything fits, with format pt + metadata", async () => {
    const dir = freshDir();
    const saved = await saveCheckpoint(dir, { a: u8(10), b: u8(20) }, { metadata: { note: "x" } });
    expect(saved).toEqual({ files: ["model.safetensors"], index: undefined });
    expect(await readdir(dir)).toEqual(["model.safetensors"]);
    const file = await openSafetensors(join(dir, "model.safetensors"));
    expect(file.metadata).toEqual({ format: "pt", note: "x" });
    await file.close();
  });

  it("accepts sizes as text like huggingface_hub ('5GB', '0.5KB') and rejects nonsense", async () => {
    const saved = await saveCheckpoint(freshDir(), { a: u8(300), b: u8(300) }, { maxShardSize: "0.5KB" });
    expect(saved.files).toEqual(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    for (const bad of ["5XB", "", -1, 0, 1.5, "GB"]) {
      await expect(saveCheckpoint(freshDir(), {}, { maxShardSize: bad })).rejects.toThrow(RangeError);
    }
  });

  it("rejects non-string metadata before writing anything", async () => {
    const dir = freshDir();
    const metadata = { epochs: 3 } as unknown as Record<string, string>;
    await expect(saveCheckpoint(dir, { a: u8(8), b: u8(8) }, { maxShardSize: 8, metadata })).rejects.toThrow(
      /metadata value of "epochs" is not a string/,
    );
    await expect(readdir(dir)).rejects.toThrow(/ENOENT/);
  });

  it("removes checkpoint files of an earlier save and nothing else", async () => {
    const dir = freshDir();
    await saveCheckpoint(dir, { a: u8(8), b: u8(8), c: u8(8) }, { maxShardSize: 8 });
    await writeFile(join(dir, "model.safetensors.backup"), "keep");
    await writeFile(join(dir, "config.json"), "{}");
    expect((await readdir(dir)).length).toBe(6);
    await saveCheckpoint(dir, { a: u8(8) });
    expect((await readdir(dir)).sort()).toEqual(["config.json", "model.safetensors", "model.safetensors.backup"]);
    await saveCheckpoint(dir, { a: u8(8), b: u8(8) }, { maxShardSize: 8 });
    expect((await readdir(dir)).sort()).toEqual([
      "config.json",
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
      "model.safetensors.backup",
      "model.safetensors.index.json",
    ]);
  });
});

describe("openCheckpoint", () => {
  it("reads the sharded golden through its index, shard by shard", async () => {
    const ckpt = await openCheckpoint(goldenPath("sharded"));
    expect(ckpt.files.map((f) => f.path.split("/").pop())).toEqual([1, 2, 3, 4].map((i) => shardFileName(i, 4)));
    expect(ckpt.names).toEqual([
      "embed.weight",
      "lm_head.weight",
      "layers.0.norm",
      "layers.0.q.weight",
      "bias",
      "layers.1.q.weight",
      "ñorm",
    ]);
    const state = goldenState();
    for await (const t of ckpt) {
      const source = state.get(t.name)!;
      expect(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)).toEqual(source.data);
      expect([t.dtype, t.shape]).toEqual([source.dtype, source.shape]);
    }
    expect(ckpt.info("ñorm").dtype).toBe("F16");
    expect((await ckpt.readTensor("lm_head.weight")).shape).toEqual([5, 6]);
    expect(() => ckpt.info("nope")).toThrow(RangeError);
    await ckpt.close();
  });

  it("opens a single file, a directory with model.safetensors, and prefers it over an index", async () => {
    const dir = freshDir();
    await saveCheckpoint(dir, { a: u8(4), b: u8(4) }, { maxShardSize: 4 });
    await writeSafetensors(join(dir, "model.safetensors"), { only: u8(2) });
    for (const path of [dir, join(dir, "model.safetensors")]) {
      const ckpt = await openCheckpoint(path);
      expect(ckpt.names).toEqual(["only"]);
      await ckpt.close();
    }
  });

  it("round-trips a checkpoint saved here", async () => {
    const dir = freshDir();
    const tensors = { x: { dtype: "F32", shape: [3], data: new Float32Array([1, 2, 3]) }, y: u8(100, 7), z: u8(100, 9) } satisfies Record<
      string,
      TensorToWrite
    >;
    await saveCheckpoint(dir, tensors, { maxShardSize: 120 });
    const ckpt = await openCheckpoint(dir);
    expect(ckpt.files.length).toBe(2);
    expect([...ckpt.names].sort()).toEqual(["x", "y", "z"]);
    expect((await ckpt.readTensor("x")).data).toEqual(new Float32Array([1, 2, 3]));
    expect((await ckpt.readTensor("z")).data).toEqual(new Uint8Array(100).fill(9));
    await ckpt.close();
  });

  async function sharded(index: string | undefined, shards: string[] = ["s1.safetensors"]): Promise<string> {
    const dir = freshDir();
    await mkdir(dir);
    for (const shard of shards) await writeSafetensors(join(dir, shard), { a: u8(2) });
    if (index !== undefined) await writeFile(join(dir, "model.safetensors.index.json"), index);
    return dir;
  }

  const INDEX_CASES: [string, string | undefined, RegExp][] = [
    ["no checkpoint", undefined, /no checkpoint here: neither model.safetensors nor model.safetensors.index.json/],
    ["bad JSON", '{"weight_map": {', /index is not valid JSON/],
    ["not an object", "[]", /index is not a JSON object/],
    ["no weight_map", '{"metadata": {}}', /index has no weight_map object/],
    ["weight_map not an object", '{"weight_map": ["a"]}', /index has no weight_map object/],
    ["value not a string", '{"weight_map": {"a": 1}}', /weight_map value of "a" is not a string/],
    [
      "path outside the directory",
      '{"weight_map": {"a": "../s1.safetensors"}}',
      /weight_map value "..\/s1.safetensors" of "a" is not a file name/,
    ],
    ["absolute path", '{"weight_map": {"a": "/etc/passwd"}}', /is not a file name in the index's directory/],
    [
      "missing shard",
      '{"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}',
      /weight_map names shard "s2.safetensors", which is missing/,
    ],
    [
      "tensor not in its shard",
      '{"weight_map": {"b": "s1.safetensors"}}',
      /weight_map puts "b" in "s1.safetensors", which has no such tensor/,
    ],
    ["duplicate tensor", '{"weight_map": {"a": "s1.safetensors", "a": "s1.safetensors"}}', /weight_map lists tensor "a" twice/],
    ["two weight_maps", '{"weight_map": {}, "weight_map": {"a": "s1.safetensors"}}', /index has two weight_map keys/],
  ];
  for (const [what, index, reason] of INDEX_CASES) {
    it(`rejects an index with ${what}`, async () => {
      const dir = await sharded(index);
      const error = await openCheckpoint(dir).catch((e) => e);
      expect(error).toBeInstanceOf(SafetensorsFormatError);
      expect(error.message).toMatch(reason);
      expect(error.message.startsWith(index === undefined ? dir : join(dir, "model.safetensors.index.json"))).toBe(true);
    });
  }

  it("ignores the index metadata and tensors a shard has beyond the weight_map", async () => {
    const dir = await sharded('{"metadata": {"total_size": "whatever", "x": [1]}, "weight_map": {}}');
    const ckpt = await openCheckpoint(dir);
    expect(ckpt.names).toEqual([]);
    await ckpt.close();
  });

  it("reports a malformed shard with the shard's name", async () => {
    const dir = await sharded('{"weight_map": {"a": "s1.safetensors"}}');
    await writeFile(join(dir, "s1.safetensors"), new Uint8Array(3));
    await expect(openCheckpoint(dir)).rejects.toThrow(`${join(dir, "s1.safetensors")}: truncated file`);
  });
});
