import { main } from "@balora/ba-lora";

// The CLI is also a function: arguments in, exit code out (errors are one line on stderr).
export async function quickstart(modelDir: string, outDir: string): Promise<number[]> {
  const codes: number[] = [];
  codes.push(await main(["init", "--model", modelDir, "--init", "pissa_niter_4", "--r", "4", "--alpha", "8", "--out", outDir]));
  codes.push(
    await main(["generate", "--model", outDir, "--adapter", `${outDir}/pissa_init`, "--prompt", "Janet has", "--max-new-tokens", "8"]),
  );
  return codes;
}
