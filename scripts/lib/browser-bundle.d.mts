// Types for browser-bundle.mjs, so the packages' TypeScript tests can import it.
// See browser-bundle.mjs for what each function does.
export interface BrowserBundle {
  code: string;
  /** Node-only imports reached while resolving: "node:fs (imported by /path/file.js)". */
  nodeImports: string[];
  /** Every module in the bundle (absolute ids). */
  modules: string[];
  globalName: string;
}

export function bundleForBrowser(options: {
  code: string;
  root: string;
  alias?: Record<string, string>;
  globalName?: string;
}): Promise<BrowserBundle>;

export function nodeReferences(code: string): string[];

export function runBundle(bundle: BrowserBundle): Record<string, unknown>;
