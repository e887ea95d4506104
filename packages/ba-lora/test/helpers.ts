// Test plumbing for the CLI: run `main` in-process capturing stdout/stderr, and fixture paths
// (the model fixtures live with @balora/models).
import { fileURLToPath } from "node:url";
import { vi } from "vitest";
import { main } from "../src/cli/main.js";

export const modelFixture = (name: string): string => fileURLToPath(new URL(`../../models/test/fixtures/${name}`, import.meta.url));

export async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, "log").mockImplementation((...a) => void out.push(a.join(" ")));
  const error = vi.spyOn(console, "error").mockImplementation((...a) => void err.push(a.join(" ")));
  const write = vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => {
    out.push(String(s));
    return true;
  });
  try {
    const code = await main(argv);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    log.mockRestore();
    error.mockRestore();
    write.mockRestore();
  }
}
