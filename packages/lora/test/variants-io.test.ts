// Built-in variants come from a static table (no import-time registration, so bundles keep them) and
// plugins cannot replace them; adapters as bytes (adapterFiles) are exactly what saveAdapter writes.
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@balora/tensor";
import { describe, expect, it } from "vitest";
import { adapterInBrowser } from "../examples/browser.js";
import * as L from "../src/index.js";
import { doraVariant } from "../src/variants/dora.js";
import { loraVariant } from "../src/variants/lora.js";
import { cpu, maxDiff, TinyNet } from "./helpers.js";

const x = T.tensor(
  Array.from({ length: 3 * 6 }, (_, i) => Math.cos(i)),
  [3, 6],
  { backend: cpu },
);

describe("variant table", () => {
  it("has lora and dora built in, refuses to replace them, and takes plugins after them", () => {
    expect(L.registeredVariants().slice(0, 2)).toEqual(["lora", "dora"]);
    expect(L.getVariant("lora")).toBe(loraVariant);
    expect(L.getVariant("dora")).toBe(doraVariant);
    expect(() => L.registerVariant({ ...loraVariant })).toThrow(
      'registerVariant: "lora" is a built-in variant and cannot be replaced; register yours under another name',
    );
    const plugin: L.AdapterVariant = { ...loraVariant, name: "lora-plus-test" };
    L.registerVariant(plugin);
    expect(L.getVariant("lora-plus-test")).toBe(plugin);
    const again: L.AdapterVariant = { ...loraVariant, name: "lora-plus-test" };
    L.registerVariant(again); // a plugin may be registered again (a reloaded module)
    expect(L.getVariant("lora-plus-test")).toBe(again);
    expect(L.registeredVariants()).toEqual(["lora", "dora", "lora-plus-test"]);
    expect(L.getVariant("lora")).toBe(loraVariant);
  });
});

describe("adapterFiles", () => {
  it("returns the two files saveAdapter writes, byte for byte, and loads back from memory", async () => {
    const net = new TinyNet(cpu);
    L.injectAdapter(net, { target_modules: ["q_proj", "down_proj"], r: 2, init_lora_weights: false, use_dora: true }, { seed: 3 });
    const files = await L.adapterFiles(net);
    expect(Object.keys(files)).toEqual([L.CONFIG_FILE, L.WEIGHTS_FILE]);
    const dir = await mkdtemp(join(tmpdir(), "balora-lora-bytes-"));
    try {
      expect(await L.saveAdapter(net, dir)).toBe(dir);
      expect(await readFile(join(dir, L.CONFIG_FILE), "utf8")).toBe(files[L.CONFIG_FILE]);
      expect(new Uint8Array(await readFile(join(dir, L.WEIGHTS_FILE)))).toEqual(files[L.WEIGHTS_FILE]);
      expect(await L.saveAdapter(net, dir, { adapterName: "default" })).toBe(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const want = Array.from(await T.noGrad(() => net.forward(x)).data());
    const fresh = new TinyNet(cpu);
    await L.loadAdapter(fresh, files);
    expect(maxDiff(await T.noGrad(() => fresh.forward(x)).data(), want)).toBeLessThan(1e-6); // F32 on disk, f64 on the CPU
    expect((await L.readAdapterConfig(files)).use_dora).toBe(true);
    await expect(L.adapterFiles(net, { adapterName: "nope" })).rejects.toThrow(/^adapterFiles: adapter "nope" does not exist/);
  });

  it("the README's browser example (examples/browser.ts, verbatim) loads from Files and gives them back", async () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    expect(readme).toContain(readFileSync(new URL("../examples/browser.ts", import.meta.url), "utf8").trim());
    const net = new TinyNet(cpu);
    L.injectAdapter(net, { target_modules: ["v_proj"], r: 3, init_lora_weights: false }, { seed: 5 });
    const picked = Object.entries(await L.adapterFiles(net)).map(([name, data]) => new File([data], name));
    const out = await adapterInBrowser(new TinyNet(cpu), picked);
    expect(out.map((f) => f.name)).toEqual([L.CONFIG_FILE, L.WEIGHTS_FILE]);
    for (const [i, f] of out.entries())
      expect(new Uint8Array(await f.arrayBuffer())).toEqual(new Uint8Array(await picked[i].arrayBuffer()));
  });

  it("names the in-memory file at fault", async () => {
    const files = await L.adapterFiles(
      (() => {
        const net = new TinyNet(cpu);
        L.injectAdapter(net, { target_modules: ["q_proj"], r: 2 });
        return net;
      })(),
    );
    await expect(L.loadAdapter(new TinyNet(cpu), { [L.CONFIG_FILE]: files[L.CONFIG_FILE] })).rejects.toThrow(
      "<memory>/adapter_model.safetensors: not found",
    );
    await expect(L.loadAdapter(new TinyNet(cpu), { [L.CONFIG_FILE]: "{" })).rejects.toThrow(/^<memory>\/adapter_config.json: invalid JSON/);
    await expect(L.readAdapterConfig(new Map())).rejects.toThrow(/^<memory>\/adapter_config.json: not found; an adapter directory needs/);
  });
});
