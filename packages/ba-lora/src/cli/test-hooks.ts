// Points where tests of signals and kill -9 can stop a real `balora` run deterministically, set by
// BALORA_TEST_HOLD; without that variable each hook returns at once and costs nothing.

const hold = (): string | undefined => process.env.BALORA_TEST_HOLD;
const block = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Just before an output is renamed into place (complete under its temporary name): `commit` waits a
 * minute with the event loop free; `commit-busy` blocks the thread, as a long synchronous computation would.
 */
export async function holdBeforeCommit(): Promise<void> {
  const h = hold();
  if (h !== "commit" && h !== "commit-busy") return;
  console.error(`balora: holding before the rename (BALORA_TEST_HOLD=${h}, pid ${process.pid})`);
  if (h === "commit-busy") block(60_000);
  else await new Promise((done) => setTimeout(done, 60_000));
}

/** `layers`: each PiSSA layer takes 200 ms more (synchronously), like a big layer's SVD on the CPU. */
export function slowLayer(): void {
  if (hold() === "layers") block(200);
}
