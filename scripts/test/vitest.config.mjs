// The vitest settings of the install test (scripts/check-packages.mjs runs it on freshly packed tarballs):
// one worker, since every test drives processes of its own in the same temporary project.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  test: {
    include: ["*.test.mjs"],
    testTimeout: 180_000,
    hookTimeout: 240_000,
    pool: "forks",
    maxWorkers: 1,
    fileParallelism: false,
  },
});
