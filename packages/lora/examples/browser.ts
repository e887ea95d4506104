import { adapterFiles, loadAdapter } from "@balora/lora";
import type * as T from "@balora/tensor";

// In a page: load a peft adapter from the user's files (or a URL, or a Map of fetched bytes), then
// offer the (trained) adapter back as the two files peft reads, e.g. through <a download> links.
export async function adapterInBrowser(model: T.Module, picked: File[] | URL | Map<string, Uint8Array>): Promise<File[]> {
  await loadAdapter(model, picked); // adapter_config.json + adapter_model.safetensors
  const files = await adapterFiles(model); // exactly the bytes saveAdapter writes in Node
  return Object.entries(files).map(([name, data]) => new File([data], name)); // URL.createObjectURL(file)
}
