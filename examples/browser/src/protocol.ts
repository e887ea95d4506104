// The messages between the page and its training worker (one run at a time; a new "start" ends the
// previous run after its current step), typed once for both sides.
import type { RunSettings } from "./query.js";

export type ToWorker = { type: "start"; run: RunSettings; assets: string; id: number };

export type FromWorker =
  | { type: "status"; id: number; text: string }
  | { type: "ready"; id: number; adapter: string; device: string; trainable: string; examples: number; terms: string[] }
  | { type: "generated"; id: number; when: "before" | "after"; text: string }
  | { type: "step"; id: number; row: Record<string, number | boolean> }
  | { type: "done"; id: number; files: { name: string; bytes: Uint8Array }[]; seconds: number }
  | { type: "no-webgpu"; id: number; reason: string }
  | { type: "error"; id: number; message: string };
