import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Dawn runs fine in forked workers; two cores, so two forks at most.
    pool: "forks",
    maxWorkers: 2,
  },
});
