// The static site's build: relative asset paths (any static server, any sub-folder), the worker as an ES
// module, and the bundled tiny model and its data copied in beside index.html (nothing fetched elsewhere).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";

const ASSETS = fileURLToPath(new URL("../../packages/ba-lora/assets/", import.meta.url));
/** Site path → file in packages/ba-lora/assets (the worker fetches them relative to the page). */
export const SITE_ASSETS: Record<string, string> = {
  "model/config.json": "demo-model/config.json",
  "model/generation_config.json": "demo-model/generation_config.json",
  "model/tokenizer.json": "demo-model/tokenizer.json",
  "model/tokenizer_config.json": "demo-model/tokenizer_config.json",
  "model/model.safetensors": "demo-model/model.safetensors",
  "data/train.jsonl": "demo-data/train.jsonl",
};

function demoAssets(): Plugin {
  return {
    name: "balora-demo-assets",
    generateBundle() {
      for (const [fileName, src] of Object.entries(SITE_ASSETS))
        this.emitFile({ type: "asset", fileName, source: new Uint8Array(readFileSync(`${ASSETS}${src}`)) });
    },
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const path = (req.url ?? "").split("?")[0].replace(/^\//, "");
        const src = SITE_ASSETS[path];
        if (!src) return next();
        res.setHeader("Content-Type", path.endsWith(".json") ? "application/json" : "application/octet-stream");
        res.end(readFileSync(`${ASSETS}${src}`));
      });
    },
  };
}

export default defineConfig({
  base: "./",
  plugins: [demoAssets()],
  worker: { format: "es" },
  build: { target: "es2022", outDir: "dist", emptyOutDir: true, reportCompressedSize: false, chunkSizeWarningLimit: 2000 },
});
