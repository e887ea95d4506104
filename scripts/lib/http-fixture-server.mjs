// A loopback HTTP server for the URL-source tests: serves named files, with or without Range support,
// and records each request (method, path, Range header) so tests can count what a load costs.
import { createServer } from "node:http";

/** Serves `files` (path → bytes) on 127.0.0.1; `close()` stops it. */
export async function serveFiles(files, { ranges = false, status } = {}) {
  const requests = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname.slice(1));
    const range = req.headers.range;
    requests.push({ method: req.method ?? "GET", path, range });
    if (status) return void res.writeHead(status).end();
    const body = files.get(path);
    if (!body) return void res.writeHead(404).end();
    const m = /^bytes=(\d+)-(\d+)$/.exec(range ?? "");
    if (!ranges || !m) return void res.writeHead(200, { "Content-Length": body.byteLength }).end(body);
    const start = Number(m[1]);
    if (start >= body.byteLength) return void res.writeHead(416, { "Content-Range": `bytes */${body.byteLength}` }).end();
    const end = Math.min(Number(m[2]), body.byteLength - 1);
    res.writeHead(206, { "Content-Range": `bytes ${start}-${end}/${body.byteLength}`, "Content-Length": end - start + 1 });
    res.end(body.subarray(start, end + 1));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}/`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
