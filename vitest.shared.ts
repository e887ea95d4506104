// The vitest settings every package shares: tests in test/, Dawn in forked workers (two cores,
// two forks), generous timeouts for lavapipe, and the package's own name resolved to its sources.
import { fileURLToPath } from "node:url";
import { defineConfig, type UserConfig } from "vitest/config";

/** `packageName` → `<packageDir>/src/index.ts`, so examples importing the package test the sources. */
export function packageTestConfig(packageName: string | null, packageDir: URL): UserConfig {
  return defineConfig({
    resolve: packageName ? { alias: { [packageName]: fileURLToPath(new URL("./src/index.ts", packageDir)) } } : {},
    test: {
      include: ["test/**/*.test.ts"],
      testTimeout: 120_000,
      hookTimeout: 60_000,
      pool: "forks",
      maxWorkers: 2,
    },
  });
}
