// Browsers (the package's `#dawn` import, browser condition): no Dawn to load, so device.ts uses
// navigator.gpu alone, and no node: module or `webgpu` package is reachable from the browser build.

/** There is no Dawn in a browser. */
export async function dawn(): Promise<GPU | undefined> {
  return undefined;
}
