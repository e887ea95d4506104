// Types for png.mjs, so the packages' TypeScript tests can import it.
// See png.mjs for what the decoder handles.
export function decodePng(png: Buffer): { width: number; height: number; rgba: Uint8Array };
