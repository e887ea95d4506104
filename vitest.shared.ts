// The vitest settings every package shares: tests in test/, Dawn in forked workers (two cores,
// two forks), generous timeouts for lavapipe, and the package's own entry points resolved to its sources.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig, type UserConfig } from "vitest/config";

/** Every export of the package ("." and subpaths such as "./kernel") → its source file, so tests and examples test the sources. */
function sourceAliases(packageName: string, packageDir: URL): { find: RegExp; replacement: string }[] {
  const pkg = JSON.parse(readFileSync(new URL("./package.json", packageDir), "utf8")) as { exports?: Record<string, { import?: string }> };
  return Object.entries(pkg.exports ?? { ".": { import: "./dist/index.js" } }).map(([sub, target]) => {
    const src = (target.import ?? "./dist/index.js").replace(/^\.\/dist\//, "./src/").replace(/\.js$/, ".ts");
    const name = sub === "." ? packageName : `${packageName}/${sub.slice(2)}`;
    return { find: new RegExp(`^${name.replace(/[/.]/g, "\\$&")}$`), replacement: fileURLToPath(new URL(src, packageDir)) };
  });
}

export function packageTestConfig(packageName: string | null, packageDir: URL): UserConfig {
  return defineConfig({
    resolve: packageName ? { alias: sourceAliases(packageName, packageDir) } : {},
    test: {
      include: ["test/**/*.test.ts"],
      testTimeout: 120_000,
      hookTimeout: 60_000,
      pool: "forks",
      maxWorkers: 2,
    },
  });
}
