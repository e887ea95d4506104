// The loopback file server of scripts/lib/http-fixture-server.mjs, stopped when the test file ends.
// It serves named files with or without Range support and records every request.
import { afterAll } from "vitest";
import { type ServedFiles, serveFiles } from "../../../scripts/lib/http-fixture-server.mjs";

export async function serve(
  files: ReadonlyMap<string, Uint8Array>,
  opts: { ranges?: boolean; status?: number } = {},
): Promise<ServedFiles> {
  const server = await serveFiles(files, opts);
  afterAll(() => server.close());
  return server;
}
