import { openCheckpoint, serializeSafetensors } from "@balora/safetensors";

// In a page: a file's bytes to offer as a download, and a checkpoint read from a URL (Range requests,
// tensor by tensor), a picked File or Files, or files in memory — the same calls as in Node.
export async function inTheBrowser(checkpoint: URL | File | File[] | Map<string, Uint8Array>): Promise<string[]> {
  const bytes = await serializeSafetensors({ "w.weight": { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
  const download = new File([bytes], "model.safetensors"); // e.g. <a download href={URL.createObjectURL(download)}>
  const names = [`${download.name}: ${download.size} bytes`];
  const ckpt = await openCheckpoint(checkpoint); // one .safetensors, or model.safetensors / shards + index
  for await (const t of ckpt) names.push(`${t.name} ${t.dtype} [${t.shape}]`);
  await ckpt.close();
  return names;
}
