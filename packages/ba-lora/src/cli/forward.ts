// `balora forward`: logits of a model (optionally with an adapter) for token ids from a safetensors
// file, written as `logits` F32 [B, T, V] (or [B, C] for a classifier) to another safetensors file.
import { openSafetensors, writeSafetensors } from "@balora/safetensors";
import * as T from "@balora/tensor";
import { parse, UsageError } from "./args.js";
import type { Command } from "./main.js";
import { loadForCli } from "./model.js";

const USAGE = "balora forward --model DIR [--adapter DIR] --input IN.safetensors --out OUT.safetensors";

/** Reads `input_ids` (I64|I32 [B,T]) and optional `attention_mask` from a safetensors file, validated. */
export async function readBatch(
  file: string,
  vocabSize: number,
): Promise<{ ids: Int32Array; mask: Int32Array | null; B: number; T: number }> {
  const f = await openSafetensors(file);
  try {
    if (!f.has("input_ids"))
      throw new UsageError(`${file}: no tensor "input_ids" (expected I64 or I32 [B, T]); found: ${f.names.join(", ") || "none"}`);
    const toInt = async (name: string, allowed: string[]): Promise<{ data: Int32Array; shape: number[] }> => {
      const t = await f.readTensor(name);
      if (!allowed.includes(t.dtype)) throw new UsageError(`${file}: "${name}" has dtype ${t.dtype}, expected ${allowed.join(" or ")}`);
      if (t.shape.length !== 2) throw new UsageError(`${file}: "${name}" has shape [${t.shape.join(",")}], expected [B, T]`);
      const data = Int32Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
      return { data, shape: t.shape };
    };
    const ids = await toInt("input_ids", ["I64", "I32"]);
    const [B, Tn] = ids.shape;
    if (B === 0 || Tn === 0) throw new UsageError(`${file}: "input_ids" is empty ([${B},${Tn}])`);
    const bad = ids.data.findIndex((v) => v < 0 || v >= vocabSize);
    if (bad >= 0)
      throw new UsageError(
        `${file}: input_ids[${Math.floor(bad / Tn)}][${bad % Tn}] = ${ids.data[bad]} is outside the model's vocabulary [0, ${vocabSize})`,
      );
    let mask: Int32Array | null = null;
    if (f.has("attention_mask")) {
      const m = await toInt("attention_mask", ["I64", "I32", "U8", "BOOL", "F32"]);
      if (m.shape[0] !== B || m.shape[1] !== Tn)
        throw new UsageError(`${file}: "attention_mask" has shape [${m.shape.join(",")}], input_ids has [${B},${Tn}]`);
      mask = m.data;
    }
    return { ids: ids.data, mask, B, T: Tn };
  } finally {
    await f.close();
  }
}

export const forwardCommand: Command = {
  summary: "compute logits for input ids (safetensors in, safetensors out)",
  usage: USAGE,
  async run(argv) {
    const a = parse(argv, {
      model: { type: "string", required: true },
      adapter: { type: "string" },
      input: { type: "string", required: true },
      out: { type: "string", required: true },
    });
    const { model, backend } = await loadForCli(a.model!, a.adapter);
    const batch = await readBatch(a.input!, model.config.vocabSize);
    const logits = await T.noGrad(() =>
      T.tidy(() => {
        const ids = T.tensor(batch.ids, [batch.B, batch.T], { backend });
        const mask = batch.mask ? T.tensor(batch.mask, [batch.B, batch.T], { backend }) : undefined;
        return model.forward(ids, { attentionMask: mask });
      }),
    ).data();
    const shape = model.config.head === "causal-lm" ? [batch.B, batch.T, model.config.vocabSize] : [batch.B, model.config.numLabels];
    await writeSafetensors(a.out!, { logits: { dtype: "F32", shape, data: Float32Array.from(logits) } }, { metadata: { format: "pt" } });
  },
};
