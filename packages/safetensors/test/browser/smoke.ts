// What a web page does with @balora/safetensors, run from the browser bundle (browser-bundle.test.ts
// bundles this file with `@balora/safetensors` as src/browser.ts): bytes, Files, fetch URLs.
import * as st from "@balora/safetensors";
import { inTheBrowser } from "../../examples/browser.js";

const message = async (p: Promise<unknown>) =>
  p.then(
    () => "resolved",
    (e: Error) => `${e.name}: ${e.message}`,
  );

async function names(checkpoint: Promise<st.Checkpoint>): Promise<string[]> {
  const c = await checkpoint;
  const out: string[] = [];
  for await (const t of c) out.push(`${t.name}:${t.dtype}:${t.data.length}`);
  await c.close();
  return out;
}

export async function smoke(input: { shardedFiles: Map<string, Uint8Array>; base: string }) {
  const weight = new Float32Array([0.5, -1.25, 3, 7.75]);
  const bytes = await st.serializeSafetensors({
    "layer.weight": { dtype: "F32", shape: [2, 2], data: weight },
    "layer.frozen": { dtype: "BF16", shape: [4], data: st.float32ToBf16(weight) },
  });
  const parsed = await st.parseSafetensors(bytes);
  const fromBuffer = await st.openSafetensors(bytes.buffer);
  const fromBlob = await st.openSafetensors(new Blob([bytes]));
  const roundTrip = [
    Array.from((await parsed.readTensor("layer.weight")).data as Float32Array),
    Array.from(st.bf16ToFloat32((await fromBuffer.readTensor("layer.frozen")).data as Uint16Array)),
    Array.from((await fromBlob.readTensor("layer.weight")).data as Float32Array),
  ];
  return {
    example: await inTheBrowser(new URL(`${input.base}repo/model-00001-of-00004.safetensors`)),
    roundTrip,
    fromMemory: await names(st.openCheckpoint(input.shardedFiles)),
    fromUrl: await names(st.openCheckpoint(`${input.base}repo/`)),
    relative: await message(st.openSafetensors("model.safetensors")),
    writers: [
      await message(st.writeSafetensors("x.safetensors", {})),
      await message(st.saveCheckpoint("dir", {})),
      await message(st.writeFiles("dir", {})),
      await message(st.writeTextAtomically("x.json", "{}")),
      await message(st.writeFileAtomically("x.bin", async () => {})),
    ],
  };
}
