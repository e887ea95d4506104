// Progress of long work (PiSSA per layer, writing a model) as lines on stderr, so stdout stays the
// command's result; --quiet turns them off.
let quiet = false;

export function setQuiet(q: boolean): void {
  quiet = q;
}

export const isQuiet = (): boolean => quiet;

/** One progress line on stderr (unless --quiet). */
export function progress(line: string): void {
  if (!quiet) console.error(line);
}
