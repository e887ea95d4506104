// Types for noise.mjs (plain JavaScript so the bin and scripts/turbo.mjs run it without a build),
// for the TypeScript tests that check the filter.
export declare const DAWN_NOISE: RegExp;
export declare function isDawnNoise(line: string): boolean;
export declare function filterDawnNoise(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<void>;
