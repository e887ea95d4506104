// The browser entry (src/browser.ts, the `browser` export condition) bundled by Vite as an app would:
// no node: module reachable, the Node entry's names, and bytes/Files/fetch URLs work from the bundle.
import { readFileSync } from "node:fs";
import { readFile, readdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { bundleForBrowser, nodeReferences, runBundle } from "../../../scripts/lib/browser-bundle.mjs";
import * as node from "../src/index.js";
import type { smoke as Smoke } from "./browser/smoke.js";
import { goldenPath } from "./helpers.js";
import { serve } from "./http-server.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const alias = { "@balora/safetensors": fileURLToPath(new URL("../src/browser.ts", import.meta.url)) };

async function shardedFiles(): Promise<Map<string, Uint8Array>> {
  const dir = goldenPath("sharded");
  return new Map(await Promise.all((await readdir(dir)).map(async (n) => [n, new Uint8Array(await readFile(`${dir}/${n}`))] as const)));
}

describe("@balora/safetensors in the browser", () => {
  it("the browser entry bundles with no node: module or require(), and exports what the Node entry exports", async () => {
    const bundle = await bundleForBrowser({ code: 'export * from "@balora/safetensors";', root, alias });
    expect(bundle.nodeImports).toEqual([]);
    expect(nodeReferences(bundle.code)).toEqual([]);
    expect(bundle.modules.some((m) => m.endsWith("/src/web.ts"))).toBe(true);
    expect(Object.keys(runBundle(bundle)).sort()).toEqual(Object.keys(node).sort());
  });

  it("the README's browser example is examples/browser.ts verbatim (run from the bundle below)", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    expect(readme).toContain(readFileSync(new URL("../examples/browser.ts", import.meta.url), "utf8").trim());
  });

  it("from the bundle: bytes and Blobs round-trip, checkpoints load from memory and fetch URLs, writers explain", async () => {
    const entry = fileURLToPath(new URL("./browser/smoke.ts", import.meta.url));
    const bundle = await bundleForBrowser({ code: `export { smoke } from ${JSON.stringify(entry)};`, root, alias, globalName: "Smoke" });
    expect(bundle.nodeImports).toEqual([]);
    const files = await shardedFiles();
    const server = await serve(new Map([...files].map(([n, b]) => [`repo/${n}`, b])), { ranges: true });
    const result = await (runBundle(bundle).smoke as typeof Smoke)({ shardedFiles: files, base: server.base });
    const shard = await node.openSafetensors(`${goldenPath("sharded")}/model-00001-of-00004.safetensors`);
    expect(result.example).toEqual([
      "model.safetensors: 80 bytes",
      ...shard.names.map((n) => `${n} ${shard.info(n).dtype} [${shard.info(n).shape}]`),
    ]);
    await shard.close();

    expect(result.roundTrip).toEqual([
      [0.5, -1.25, 3, 7.75],
      [0.5, -1.25, 3, 7.75],
      [0.5, -1.25, 3, 7.75],
    ]);
    const want: string[] = [];
    const disk = await node.openCheckpoint(goldenPath("sharded"));
    for await (const t of disk) want.push(`${t.name}:${t.dtype}:${t.data.length}`);
    await disk.close();
    expect(result.fromMemory).toEqual(want);
    expect(result.fromUrl).toEqual(want);
    // after the example's one request: model.safetensors (absent) and each shard are opened with a Range
    // request, the index is one plain GET
    expect(server.requests.slice(-6).map((r) => [r.path, r.range !== undefined])).toEqual([
      ["repo/model.safetensors", true],
      ["repo/model.safetensors.index.json", false],
      ...[1, 2, 3, 4].map((i) => [`repo/model-0000${i}-of-00004.safetensors`, true]),
    ]);
    expect(result.relative).toMatch(/^TypeError: "model.safetensors" is not a URL and there is no page location/);
    expect(result.writers).toEqual([
      expect.stringMatching(
        /^Error: writeSafetensors\("x.safetensors"\) writes files, and a browser has no file system.*serializeSafetensors/,
      ),
      expect.stringMatching(/^Error: saveCheckpoint\("dir"\) writes files/),
      expect.stringMatching(/^Error: writeFiles\("dir"\) writes files.*download/),
      expect.stringMatching(/^Error: writeTextAtomically\("x.json"\) writes files/),
      expect.stringMatching(/^Error: writeFileAtomically\("x.bin"\) writes files/),
    ]);
  });
});
