// A loopback HTTP server for URL-source tests: serves named files, with or without Range support,
// and records each request (method, path, Range header) so tests can count what a load costs.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll } from "vitest";

export interface Served {
  /** Base URL ending in "/". */
  base: string;
  requests: { method: string; path: string; range: string | undefined }[];
}

/** Serves `files` (path → bytes) on 127.0.0.1 until the test file ends. */
export async function serve(files: ReadonlyMap<string, Uint8Array>, opts: { ranges?: boolean; status?: number } = {}): Promise<Served> {
  const requests: Served["requests"] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname.slice(1));
    const range = req.headers.range;
    requests.push({ method: req.method ?? "GET", path, range });
    if (opts.status) return void res.writeHead(opts.status).end();
    const body = files.get(path);
    if (!body) return void res.writeHead(404).end();
    const m = /^bytes=(\d+)-(\d+)$/.exec(range ?? "");
    if (!opts.ranges || !m) return void res.writeHead(200, { "Content-Length": body.byteLength }).end(body);
    const start = Number(m[1]);
    if (start >= body.byteLength) return void res.writeHead(416, { "Content-Range": `bytes */${body.byteLength}` }).end();
    const end = Math.min(Number(m[2]), body.byteLength - 1);
    res.writeHead(206, { "Content-Range": `bytes ${start}-${end}/${body.byteLength}`, "Content-Length": end - start + 1 });
    res.end(body.subarray(start, end + 1));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, requests };
}
