// Every input the loaders take, in Node: URLs (with and without Range support; requests counted so a
// load stays streaming), Blobs, bytes, Maps, picked-folder Files, disk directories; the bytes writers.
import { createHash } from "node:crypto";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import {
  type ByteSource,
  SafetensorsFormatError,
  type TensorToWrite,
  openCheckpoint,
  openDirectory,
  openSafetensors,
  readText,
  serializeSafetensors,
  urlDirectory,
  urlSource,
  writeFiles,
  writeSafetensors,
} from "../src/index.js";
import { goldenPath, pattern, tempDir } from "./helpers.js";
import { serve } from "./http-server.js";

const root = await tempDir();
const KB = 1024;

/** Three U8 tensors of 200 KB: together past the 256 KiB first request, so later ones need ranges. */
const big: Record<string, TensorToWrite> = Object.fromEntries(
  ["a", "b", "c"].map((name, i) => [name, { dtype: "U8", shape: [200 * KB], data: pattern(200 * KB, i) }]),
);

async function filesIn(dir: string): Promise<Map<string, Uint8Array>> {
  const names = await readdir(dir);
  return new Map(await Promise.all(names.map(async (n) => [n, new Uint8Array(await readFile(join(dir, n)))] as const)));
}

/** name → SHA-256 of the bytes of every tensor, in iteration order (the file is closed after). */
async function contents(
  source: AsyncIterable<{ name: string; data: ArrayBufferView }> & { close(): Promise<void> },
): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for await (const t of source)
    out.push([
      t.name,
      createHash("sha256")
        .update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))
        .digest("hex"),
    ]);
  await source.close();
  return out;
}

describe("serializeSafetensors", () => {
  it("gives the bytes writeSafetensors writes, byte for byte (reference golden too)", async () => {
    const golden = new Uint8Array(await readFile(goldenPath("mixed.safetensors")));
    const file = await openSafetensors(golden);
    const tensors = new Map<string, TensorToWrite>();
    for await (const t of file) tensors.set(t.name, t as TensorToWrite);
    const bytes = await serializeSafetensors(tensors, { metadata: file.metadata });
    expect(bytes).toEqual(golden);
    await writeSafetensors(join(root, "same.safetensors"), tensors, { metadata: file.metadata });
    expect(new Uint8Array(await readFile(join(root, "same.safetensors")))).toEqual(bytes);
    await expect(serializeSafetensors({ x: { dtype: "F32", shape: [2], data: new Float32Array(3) } })).rejects.toThrow(
      /<bytes>: tensor "x": F32 \[2\] needs 8 bytes, got 12/,
    );
  });
});

describe("URLs", () => {
  it("with Range support: one request opens a file, each tensor past the first bytes costs one range request", async () => {
    const bytes = await serializeSafetensors(big);
    const server = await serve(new Map([["m/model.safetensors", bytes]]), { ranges: true });
    const file = await openSafetensors(new URL("m/model.safetensors", server.base));
    expect(server.requests).toEqual([{ method: "GET", path: "m/model.safetensors", range: "bytes=0-262143" }]);
    expect(file.path).toBe(`${server.base}m/model.safetensors`);
    expect(await contents(file)).toEqual(await contents(await openSafetensors(bytes)));
    // a (inside the first 256 KiB) came from the first response; b and c each from one range request
    const start = file.info("b").dataOffsets[0] + bytes.byteLength - 3 * 200 * KB;
    expect(server.requests.slice(1).map((r) => r.range)).toEqual([
      `bytes=${start}-${start + 200 * KB - 1}`,
      `bytes=${start + 200 * KB}-${start + 400 * KB - 1}`,
    ]);
    await file.close();
  });

  it("without Range support: one full download, nothing fetched twice", async () => {
    const bytes = await serializeSafetensors(big);
    const server = await serve(new Map([["model.safetensors", bytes]]), { ranges: false });
    const file = await openSafetensors(await urlSource(`${server.base}model.safetensors`));
    expect(await contents(file)).toEqual(await contents(await openSafetensors(bytes)));
    expect(server.requests.length).toBe(1);
  });

  it("a sharded checkpoint behind a base URL reads like the directory on disk", async () => {
    const disk = goldenPath("sharded");
    const server = await serve(new Map([...(await filesIn(disk))].map(([n, b]) => [`repo/${n}`, b])), { ranges: true });
    for (const input of [new URL("repo/", server.base), urlDirectory(`${server.base}repo`)]) {
      const ckpt = await openCheckpoint(input);
      expect(ckpt.files.map((f) => f.path)).toEqual([1, 2, 3, 4].map((i) => `${server.base}repo/model-0000${i}-of-00004.safetensors`));
      expect(await contents(ckpt)).toEqual(await contents(await openCheckpoint(disk)));
      await ckpt.close();
    }
    const file = await openCheckpoint(new URL("repo/model-00001-of-00004.safetensors", server.base));
    expect(file.files.length).toBe(1);
    await file.close();
  });

  it("missing files and server errors say which URL and what status", async () => {
    const server = await serve(new Map());
    await expect(urlSource(`${server.base}nope.safetensors`)).rejects.toThrow(`${server.base}nope.safetensors: not found (HTTP 404)`);
    const error = await openCheckpoint(new URL("empty/", server.base)).catch((e) => e);
    expect(error).toBeInstanceOf(SafetensorsFormatError);
    expect(error.message).toBe(`${server.base}empty/: no checkpoint here: neither model.safetensors nor model.safetensors.index.json`);
    expect(await urlDirectory(server.base).read("config.json")).toBeUndefined();
    const failing = await serve(new Map(), { status: 503 });
    await expect(urlSource(`${failing.base}x.safetensors`)).rejects.toThrow(`${failing.base}x.safetensors: HTTP 503 Service Unavailable`);
  });

  it("passes request options (headers for a private repository) and a custom fetch", async () => {
    const bytes = await serializeSafetensors({ x: { dtype: "U8", shape: [3], data: pattern(3, 1) } });
    const seen: Headers[] = [];
    const fakeFetch = (async (_url: URL, init: RequestInit) => {
      seen.push(new Headers(init.headers));
      return new Response(bytes, { status: 200 });
    }) as typeof fetch;
    const dir = urlDirectory("https://example.invalid/repo", { fetch: fakeFetch, init: { headers: { Authorization: "Bearer t" } } });
    const ckpt = await openCheckpoint(dir);
    expect(ckpt.names).toEqual(["x"]);
    expect(seen.map((h) => [h.get("authorization"), h.get("range")])).toEqual([["Bearer t", "bytes=0-262143"]]);
  });
});

describe("memory, Blobs and Files", () => {
  it("opens bytes, an ArrayBuffer, a Blob and a File the same way", async () => {
    const bytes = new Uint8Array(await readFile(goldenPath("mixed.safetensors")));
    const want = await contents(await openSafetensors(goldenPath("mixed.safetensors")));
    for (const input of [bytes, bytes.buffer, new Blob([bytes]), new File([bytes], "mixed.safetensors")]) {
      expect(await contents(await openSafetensors(input))).toEqual(want);
    }
    expect((await openSafetensors(new File([bytes], "mixed.safetensors"))).path).toBe("mixed.safetensors");
  });

  it("a sharded checkpoint from a Map, a plain object, Files of a picked folder, and a Directory of your own", async () => {
    const files = await filesIn(goldenPath("sharded"));
    const want = await contents(await openCheckpoint(goldenPath("sharded")));
    const picked = [...files].map(([name, b]) => {
      const file = new File([b], name);
      Object.defineProperty(file, "webkitRelativePath", { value: `sharded/${name}` });
      return file;
    });
    const index = new TextDecoder().decode(files.get("model.safetensors.index.json"));
    const withText = new Map<string, Uint8Array | string>([...files, ["model.safetensors.index.json", index]]);
    for (const input of [files, Object.fromEntries(files), picked, withText, openDirectory(files)]) {
      const ckpt = await openCheckpoint(input);
      expect(await contents(ckpt)).toEqual(want);
    }
    const ckpt = await openCheckpoint(picked);
    expect(ckpt.files[0].path).toBe("sharded/model-00001-of-00004.safetensors");
    const plain = await openCheckpoint([...files].map(([name, b]) => new File([b], name)));
    expect(plain.files[0].path).toBe("<files>/model-00001-of-00004.safetensors");
  });

  it("index errors name the file in memory; bad inputs get a TypeError saying what is accepted", async () => {
    const files = await filesIn(goldenPath("sharded"));
    files.delete("model-00002-of-00004.safetensors");
    await expect(openCheckpoint(files)).rejects.toThrow(
      '<memory>/model.safetensors.index.json: weight_map names shard "model-00002-of-00004.safetensors", which is missing',
    );
    await expect(openSafetensors(42 as never)).rejects.toThrow(/expected a file: a path or URL, an ArrayBuffer/);
    expect(() => openDirectory({ "config.json": 42 } as never)).toThrow(/<memory>\/config.json: the file is a number; give its bytes/);
    expect(() => openDirectory(null as never)).toThrow(/expected a directory/);
  });

  it("a ByteSource of your own is read through its read()", async () => {
    const bytes = new Uint8Array(await readFile(goldenPath("mixed.safetensors")));
    const reads: number[][] = [];
    const source: ByteSource = {
      label: "custom",
      size: bytes.byteLength,
      read: async (position, length) => {
        reads.push([position, length]);
        return bytes.slice(position, position + length);
      },
      close: async () => {},
    };
    const file = await openSafetensors(source);
    expect(file.path).toBe("custom");
    expect(reads.slice(0, 1)).toEqual([[0, 8]]);
    expect(await contents(file)).toEqual(await contents(await openSafetensors(bytes)));
  });
});

describe("Node directories and file URLs", () => {
  it("openDirectory(path) reads and opens files, undefined for missing ones; file: URLs are paths", async () => {
    const dir = join(root, "d");
    await writeFiles(dir, { "a.json": '{"a":1}', "b.bin": new Uint8Array([1, 2, 3]) });
    const d = openDirectory(dir);
    expect([d.label, d.labelOf("a.json"), await d.isDirectory()]).toEqual([dir, join(dir, "a.json"), true]);
    expect(await readText(d, "a.json")).toBe('{"a":1}');
    expect(await d.read("b.bin")).toEqual(new Uint8Array([1, 2, 3]));
    expect(await d.read("nope")).toBeUndefined();
    expect(await d.open("nope")).toBeUndefined();
    expect(await openDirectory(join(dir, "a.json")).isDirectory()).toBe(false);
    expect(await readText(openDirectory(pathToFileURL(dir)), "a.json")).toBe('{"a":1}');
    const ckpt = await openCheckpoint(pathToFileURL(goldenPath("sharded")));
    expect(ckpt.files.length).toBe(4);
    await ckpt.close();
  });

  it("writeFiles writes in order into dir or dir/subdirectory and returns that directory", async () => {
    const out = await writeFiles(root, new Map([["x.txt", "x"]]), { subdirectory: "sub" });
    expect(out).toBe(join(root, "sub"));
    expect(await readFile(join(out, "x.txt"), "utf8")).toBe("x");
    await writeFile(join(out, "x.txt"), "old");
    expect(await writeFiles(out, { "x.txt": "new" })).toBe(out);
    expect(await readdir(out)).toEqual(["x.txt"]);
    expect(await readFile(join(out, "x.txt"), "utf8")).toBe("new");
  });
});
