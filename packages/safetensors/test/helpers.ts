// Test helpers: temporary directories, deterministic bytes (the same formula as
// test/golden/make_golden.py), and hand-assembled safetensors files.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";

/** A fresh directory under os.tmpdir(), removed after the test file. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "balora-safetensors-test-"));
  afterAll(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export const goldenPath = (name: string) => new URL(`./golden/${name}`, import.meta.url).pathname;

/** bytes[i] = (i*37 + seed*11 + 5) mod 256, like make_golden.py's pattern(). */
export function pattern(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 37 + seed * 11 + 5) % 256);
}

export const ascii = (text: string) => new TextEncoder().encode(text);

export function hex(text: string): Uint8Array {
  const digits = text.replace(/\s+/g, "");
  return Uint8Array.from({ length: digits.length / 2 }, (_, i) => Number.parseInt(digits.slice(2 * i, 2 * i + 2), 16));
}

export function u64le(n: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A file as another writer might make it: header text as given (no padding unless included), then data. */
export function assemble(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = ascii(header);
  return concat(u64le(json.length), json, data);
}
