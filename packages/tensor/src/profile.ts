// Profile tags: a label ("lora", "regularizer", ...) under which dispatches are attributed when a
// backend profiles (per-dispatch GPU timestamps). Backward rules run under the tag of their forward.

let current: string | null = null;

/** The tag dispatches are attributed to right now (null = untagged). */
export const profileTag = (): string | null => current;

/** Runs `fn` with dispatches (and the backward rules it records) attributed to `tag`. */
export function withProfileTag<T>(tag: string | null, fn: () => T): T {
  const prev = current;
  current = tag;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

/** One timed dispatch: the kernel's key (up to its first ':'), its tag, GPU nanoseconds and FLOPs when known. */
export interface ProfileEntry {
  op: string;
  /** The pipeline key (the kernel variant), without an elementwise op's expression. */
  key: string;
  tag: string | null;
  ns: number;
  flops?: number;
}
