// Types for http-fixture-server.mjs, so the packages' TypeScript tests can import it.
// See http-fixture-server.mjs for what the server does.
export interface ServedFiles {
  /** Base URL ending in "/". */
  base: string;
  requests: { method: string; path: string; range: string | undefined }[];
  close(): Promise<void>;
}

export function serveFiles(files: ReadonlyMap<string, Uint8Array>, options?: { ranges?: boolean; status?: number }): Promise<ServedFiles>;
