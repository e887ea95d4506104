// The engine's import graph points one way: no runtime import cycle anywhere in src, the graph module
// imports no op, and ops never reach into the concrete WebGPU backend (only the Backend interfaces).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = fileURLToPath(new URL("../src", import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Runtime imports of a file (type-only imports and specifiers are not edges), as src-relative paths. */
function runtimeImports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/^(import|export)\s+(type\s+)?(\{[^}]*\}|\*(?:\s+as\s+\w+)?|\w+)?\s*(?:from\s+)?"(\.[^"]+)";/gms)) {
    const [, , typeOnly, names, spec] = m;
    if (typeOnly) continue;
    if (names?.startsWith("{")) {
      const parts = names
        .slice(1, -1)
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      if (parts.length > 0 && parts.every((p) => p.startsWith("type "))) continue;
    }
    out.push(relative(SRC, resolve(file, "..", spec.replace(/\.js$/, ".ts"))));
  }
  return out;
}

const graph = new Map(files(SRC).map((f) => [relative(SRC, f), runtimeImports(f)]));

describe("the engine's import graph", () => {
  it("has no runtime import cycle", () => {
    const state = new Map<string, "open" | "done">();
    const cycles: string[] = [];
    const visit = (n: string, path: string[]) => {
      if (state.get(n) === "done") return;
      if (state.get(n) === "open") {
        cycles.push([...path.slice(path.indexOf(n)), n].join(" → "));
        return;
      }
      state.set(n, "open");
      for (const m of graph.get(n) ?? []) visit(m, [...path, n]);
      state.set(n, "done");
    };
    for (const n of graph.keys()) visit(n, []);
    expect(cycles).toEqual([]);
  });

  it("graph.ts (records, scopes, node freeing) imports no op and no backend", () => {
    expect(graph.get("graph.ts")).toEqual(["errors.ts", "profile.ts"]);
  });

  it("ops and linalg use the Backend interfaces, never the concrete WebGPU backend", () => {
    const offenders = [...graph]
      .filter(([f, deps]) => /^(ops|linalg|optim|nn)\//.test(f) && deps.includes("backend/webgpu.ts"))
      .map(([f]) => f);
    expect(offenders).toEqual([]);
  });
});
