// Files and directories behind URLs, through fetch: HTTP Range requests when the server honours
// them (a multi-GB shard is read tensor by tensor), else one full download of the file.
import { type ByteSource, type Directory, bytesSource } from "./source.js";

export interface UrlOptions {
  /** Merged into every request: headers (Authorization for a private repository), credentials, cache... */
  init?: RequestInit;
  /** The fetch to use (default: globalThis.fetch). */
  fetch?: typeof fetch;
}

/** Bytes the first request asks for: a safetensors header usually fits, so opening costs one request. */
const PROBE_BYTES = 1 << 18;

/** A file behind a URL; rejects when the server says it does not exist. */
export async function urlSource(url: string | URL, options: UrlOptions = {}): Promise<ByteSource> {
  const u = new URL(url);
  const source = await probe(u, options);
  if (!source) throw new Error(`${u.href}: not found (HTTP 404)`);
  return source;
}

/**
 * A directory behind a base URL: file `name` is `new URL(name, base)`, e.g. a Hugging Face repository
 * at `https://huggingface.co/<repo>/resolve/main/`. A base without a trailing slash gets one.
 */
export function urlDirectory(base: string | URL, options: UrlOptions = {}): Directory {
  const dir = new URL(base);
  if (!dir.pathname.endsWith("/")) dir.pathname += "/";
  const urlOf = (name: string) => new URL(name.split("/").map(encodeURIComponent).join("/"), dir);
  return {
    label: dir.href,
    labelOf: (name) => urlOf(name).href,
    isDirectory: async () => true,
    async read(name) {
      const url = urlOf(name);
      const res = await request(url, options);
      if (missing(res)) return undefined;
      if (!res.ok) throw httpError(url, res);
      return new Uint8Array(await res.arrayBuffer());
    },
    open: (name) => probe(urlOf(name), options),
  };
}

function request(url: URL, options: UrlOptions, range?: string): Promise<Response> {
  const headers = new Headers(options.init?.headers);
  if (range !== undefined) headers.set("Range", range);
  return (options.fetch ?? globalThis.fetch)(url, { ...options.init, headers });
}

function missing(res: Response): boolean {
  if (res.status !== 404 && res.status !== 410) return false;
  void res.body?.cancel();
  return true;
}

function httpError(url: URL, res: Response): Error {
  void res.body?.cancel();
  return new Error(`${url.href}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`);
}

/** Total size from `Content-Range: bytes 0-1023/4096`; undefined when absent or unreadable (CORS). */
function totalSize(res: Response): number | undefined {
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+)$/i.exec(res.headers.get("content-range")?.trim() ?? "");
  return m ? Number(m[3]) : undefined;
}

/** Asks for the first bytes with a Range header: a 206 means ranges work, a 200 brought the whole file. */
async function probe(url: URL, options: UrlOptions): Promise<ByteSource | undefined> {
  const res = await request(url, options, `bytes=0-${PROBE_BYTES - 1}`);
  if (missing(res)) return undefined;
  if (res.status === 416) {
    void res.body?.cancel();
    return bytesSource(new Uint8Array(0), url.href); // nothing to range over: an empty file
  }
  if (!res.ok) throw httpError(url, res);
  const first = new Uint8Array(await res.arrayBuffer());
  if (res.status !== 206) return bytesSource(first, url.href);
  const size = totalSize(res);
  if (size !== undefined && size >= first.byteLength) return new RangeSource(url, options, size, first);
  // The size is unknown (Content-Range not exposed to this origin): short means whole, else download it.
  if (first.byteLength < PROBE_BYTES) return bytesSource(first, url.href);
  const all = await request(url, options);
  if (!all.ok) throw httpError(url, all);
  return bytesSource(new Uint8Array(await all.arrayBuffer()), url.href);
}

/** Reads past the probed prefix with one Range request each (each tensor of a checkpoint, say). */
class RangeSource implements ByteSource {
  readonly label: string;
  private whole: Uint8Array | undefined;

  constructor(
    private readonly url: URL,
    private readonly options: UrlOptions,
    readonly size: number,
    private readonly prefix: Uint8Array,
  ) {
    this.label = url.href;
  }

  async read(position: number, length: number): Promise<Uint8Array> {
    const end = position + length;
    if (!(Number.isSafeInteger(position) && Number.isSafeInteger(length) && position >= 0 && length >= 0 && end <= this.size)) {
      throw new RangeError(`${this.label}: cannot read bytes [${position},${end}) of a ${this.size}-byte file`);
    }
    if (length === 0) return new Uint8Array(0);
    if (end <= this.prefix.byteLength) return this.prefix.slice(position, end);
    if (this.whole) return this.whole.slice(position, end);
    const res = await request(this.url, this.options, `bytes=${position}-${end - 1}`);
    if (!res.ok) throw httpError(this.url, res);
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (res.status === 200 && bytes.byteLength === this.size) {
      this.whole = bytes; // the server stopped honouring ranges: keep the file it sent
      return bytes.slice(position, end);
    }
    if (res.status !== 206 || bytes.byteLength !== length) {
      throw new Error(
        `${this.label}: asked for bytes [${position},${end}) and got HTTP ${res.status} with ${bytes.byteLength} bytes; ` +
          "the file changed on the server, or a proxy alters range requests",
      );
    }
    return bytes;
  }

  async close(): Promise<void> {
    this.whole = undefined;
  }
}
