// The README's example, run by test/examples.test.ts: the CLI is also a function, arguments in and
// exit code out (errors are one line on stderr), so scripts can drive it without spawning processes.
import { main } from "@balora/ba-lora";

export async function quickstart(modelDir: string, outDir: string): Promise<number[]> {
  const codes: number[] = [];
  codes.push(await main(["init", "--model", modelDir, "--init", "pissa_niter_4", "--r", "4", "--alpha", "8", "--out", outDir, "--quiet"]));
  const adapter = `${outDir}/pissa_init`;
  codes.push(await main(["generate", "--model", outDir, "--adapter", adapter, "--prompt", "Janet has", "--max-new-tokens", "8"]));
  return codes;
}
