// The browser build, as an app bundles it: each package's entry through Vite with browser conditions
// reaches no node: module and no `webgpu`, and the bundled code loads models/adapters from memory.
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loadAdapter } from "@balora/lora";
import * as T from "@balora/tensor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BrowserBundle, bundleForBrowser, nodeReferences, runBundle } from "../../../scripts/lib/browser-bundle.mjs";
import { generateInBrowser } from "../examples/browser.js";
import { type LanguageModel, loadModel, Tokenizer } from "../src/index.js";
import { serveFiles } from "../../../scripts/lib/http-fixture-server.mjs";
import { fixture } from "./helpers.js";
import type { smoke as Smoke, SmokeInput } from "./browser/smoke.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const alias = { "@balora/models": fileURLToPath(new URL("../src/index.ts", import.meta.url)) };
const adapterDir = fileURLToPath(new URL("../../ba-lora/test/fixtures/peft/llama-lora", import.meta.url));
const PROMPT = "Janet has 3 ducks";

const filesOf = (dir: string) => new Map(readdirSync(dir).map((name) => [name, new Uint8Array(readFileSync(`${dir}/${name}`))]));

/** Files as a folder picker gives them: `webkitRelativePath` is "<folder>/<name>". */
function pickedFolder(dir: string, folder: string): File[] {
  return [...filesOf(dir)].map(([name, bytes]) => {
    const file = new File([bytes], name);
    Object.defineProperty(file, "webkitRelativePath", { value: `${folder}/${name}` });
    return file;
  });
}

async function logits(model: LanguageModel, ids: number[], backend: T.Backend): Promise<number[]> {
  const x = T.tensor(Int32Array.from(ids), [1, ids.length], { backend });
  return Array.from(await T.noGrad(() => model.forward(x)).data());
}

describe("browser bundles of @balora/safetensors, tensor, lora and models", () => {
  it("the check itself: a node: import and a webgpu import are caught", async () => {
    const bundle = await bundleForBrowser({
      code: 'import { tmpdir } from "node:os"; export const dir = () => tmpdir(); export const gpu = () => import("webgpu");',
      root,
    });
    expect(bundle.nodeImports).toEqual([expect.stringMatching(/^node:os /), expect.stringMatching(/^webgpu /)]);
  });

  for (const pkg of ["@balora/safetensors", "@balora/tensor", "@balora/lora", "@balora/models"]) {
    it(`${pkg}: every export bundles with no node: module, require() or webgpu import reachable`, async () => {
      const bundle = await bundleForBrowser({ code: `export * from "${pkg}";`, root, alias });
      expect(bundle.nodeImports).toEqual([]);
      expect(nodeReferences(bundle.code)).toEqual([]);
      const browserExports = Object.keys(runBundle(bundle)).sort();
      const nodeExports = Object.keys(pkg === "@balora/models" ? await import("../src/index.js") : await import(pkg)).sort();
      expect(browserExports).toEqual(nodeExports);
    });
  }

  describe("the smoke script, bundled, run without Node's globals", () => {
    let bundle: BrowserBundle;
    let result: Awaited<ReturnType<typeof Smoke>>;
    beforeAll(async () => {
      const entry = fileURLToPath(new URL("./browser/smoke.ts", import.meta.url));
      bundle = await bundleForBrowser({ code: `export { smoke } from ${JSON.stringify(entry)};`, root, alias, globalName: "Smoke" });
      const server = await serveFiles(filesOf(fixture("llama-f32")), { ranges: true });
      afterAll(() => server.close());
      const input: SmokeInput = {
        model: filesOf(fixture("llama-f32")),
        modelUrl: server.base,
        shardedFolder: pickedFolder(fixture("mistral-f32-sharded"), "mistral"),
        adapter: Object.fromEntries(filesOf(adapterDir)),
        prompt: PROMPT,
      };
      result = await (runBundle(bundle).smoke as typeof Smoke)(input);
    });

    it("bundles with no node: module or webgpu", () => {
      expect(bundle.nodeImports).toEqual([]);
      expect(nodeReferences(bundle.code)).toEqual([]);
    });

    it("has the built-in variants (no import-time registration), which plugins cannot replace", () => {
      expect(result.variants).toEqual({ registered: ["lora", "dora"], lora: "lora", dora: "dora" });
      expect(result.overrideBuiltIn).toMatch(/"lora" is a built-in variant and cannot be replaced/);
    });

    it("without navigator.gpu, createWebGPU fails with the DeviceError (no Dawn in the browser build)", () => {
      expect(result.webgpu).toMatch(/^DeviceError: no WebGPU adapter found/);
    });

    it("config, tokenizer and checkpoint from memory give the logits loading from disk gives", async () => {
      const backend = T.cpuBackend();
      const tokenizer = await Tokenizer.fromDir(fixture("llama-f32"));
      expect(result.ids).toEqual(tokenizer.encode(PROMPT));
      expect(result.architecture).toBe("LlamaForCausalLM");
      const model = await loadModel(fixture("llama-f32"), { backend });
      expect(result.base).toEqual(await logits(model, result.ids, backend));
      await loadAdapter(model, adapterDir);
      expect(result.adapterTargets).toEqual(["v_proj", "q_proj"]);
      expect(result.adapted).toEqual(await logits(model, result.ids, backend));
      expect(result.adapted).not.toEqual(result.base);
    });

    it("a model and tokenizer load from a base URL (fetch, Range requests) with the same logits", () => {
      expect(result.httpLogits).toEqual(result.base);
    });

    it("an adapter's two files as bytes (adapterFiles) load back as an in-memory directory", () => {
      expect(result.adapterFileNames).toEqual(["adapter_config.json", "adapter_model.safetensors"]);
      expect(result.reloaded).toEqual(result.adapted);
    });

    it("the README's browser example (examples/browser.ts, verbatim) generates what it generates in Node", async () => {
      const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
      expect(readme).toContain(readFileSync(new URL("../examples/browser.ts", import.meta.url), "utf8").trim());
      expect(result.example).toBe(await generateInBrowser(filesOf(fixture("llama-f32")), T.cpuBackend()));
      expect(result.example.length).toBeGreaterThan(0);
    });

    it("a sharded checkpoint loads from a picked folder's Files", async () => {
      const backend = T.cpuBackend();
      const model = await loadModel(fixture("mistral-f32-sharded"), { backend });
      expect(result.shardedLogits).toEqual(await logits(model, result.ids, backend));
      expect(result.shardFiles).toEqual(["mistral/model-00001-of-00002.safetensors", "mistral/model-00002-of-00002.safetensors"]);
    });
  });
});
