import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as st from "@balora/safetensors";

// Save an f32 and a bf16 tensor as a checkpoint, then stream them back one tensor at a time.
export async function quickstart(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "balora-quickstart-"));
  try {
    const weight = new Float32Array([0.5, -1.25, 3, 7.75]);
    await st.saveCheckpoint(dir, {
      "layer.weight": { dtype: "F32", shape: [2, 2], data: weight },
      "layer.frozen": { dtype: "BF16", shape: [4], data: st.float32ToBf16(weight) },
    });
    const checkpoint = await st.openCheckpoint(dir); // model.safetensors, or shards + index
    let total = 0;
    for await (const t of checkpoint) {
      const values = t.dtype === "BF16" ? st.bf16ToFloat32(t.data) : t.data;
      console.log(t.name, t.dtype, t.shape, values);
      for (const v of values) total += Number(v);
    }
    await checkpoint.close();
    return total; // 2 × (0.5 − 1.25 + 3 + 7.75) = 20
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
