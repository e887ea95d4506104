import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    // Examples import the package by name; tests run them against the sources.
    alias: { "@balora/safetensors": fileURLToPath(new URL("./src/index.ts", import.meta.url)) },
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    // Pure CPU and file I/O; two cores, so two forks at most.
    pool: "forks",
    maxWorkers: 2,
  },
});
