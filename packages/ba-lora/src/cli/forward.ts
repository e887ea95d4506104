// `balora forward`: logits of a model (optionally with an adapter) for token ids from a safetensors
// file, written as `logits` F32 [B, T, V] (or [B, C] for a classifier) to another safetensors file.
import { openSafetensors, writeSafetensors } from "@balora/safetensors";
import * as T from "@balora/tensor";
import { CliError, type FlagSpecs, parse } from "./args.js";
import { requireFile } from "./inputs.js";
import type { Command } from "./main.js";
import { ADAPTER_FLAG, checkAdapterDir, cliBackend, loadForCli, MODEL_FLAG, readModelConfig, requireTokensFit } from "./model.js";
import { OVERWRITE_FLAG, planOutput, writeFileOutput } from "./output.js";

const USAGE = "balora forward --model DIR [--adapter DIR] --input IN.safetensors --out OUT.safetensors [--overwrite]";

const FLAGS = {
  model: MODEL_FLAG,
  adapter: ADAPTER_FLAG,
  input: {
    type: "string",
    value: "IN.safetensors",
    required: true,
    help: "input_ids I64|I32 [B, T], optional attention_mask [B, T] of 0/1",
  },
  out: { type: "string", value: "OUT.safetensors", required: true, help: "where to write logits F32 [B, T, V] ([B, C] for a classifier)" },
  overwrite: OVERWRITE_FLAG,
} satisfies FlagSpecs;

const at = (i: number, Tn: number) => `[${Math.floor(i / Tn)}][${i % Tn}]`;

/** Reads `input_ids` (I64|I32 [B,T]) and optional `attention_mask` (0/1) from a safetensors file, validated. */
export async function readBatch(
  file: string,
  vocabSize: number,
): Promise<{ ids: Int32Array; mask: Int32Array | null; B: number; T: number }> {
  const f = await openSafetensors(file);
  try {
    if (!f.has("input_ids"))
      throw new CliError(`${file}: no tensor "input_ids" (expected I64 or I32 [B, T]); found: ${f.names.join(", ") || "none"}`);
    // Values are checked as read (BigInt for I64) before narrowing to Int32, so 2^32 + 1 cannot pass as 1.
    const read = async (name: string, allowed: string[], ok: (v: number | bigint) => boolean, want: string) => {
      const t = await f.readTensor(name);
      if (!allowed.includes(t.dtype)) throw new CliError(`${file}: "${name}" has dtype ${t.dtype}, expected ${allowed.join(" or ")}`);
      if (t.shape.length !== 2) throw new CliError(`${file}: "${name}" has shape [${t.shape.join(",")}], expected [B, T]`);
      const raw = t.data as ArrayLike<number | bigint>;
      const Tn = t.shape[1];
      for (let i = 0; i < raw.length; i++) if (!ok(raw[i])) throw new CliError(`${file}: ${name}${at(i, Tn)} = ${raw[i]} ${want}`);
      return { data: Int32Array.from(raw, (v) => Number(v)), shape: t.shape };
    };
    const V = BigInt(vocabSize);
    const ids = await read(
      "input_ids",
      ["I64", "I32"],
      (v) => (typeof v === "bigint" ? v >= 0n && v < V : v >= 0 && v < vocabSize),
      `is outside the model's vocabulary [0, ${vocabSize})`,
    );
    const [B, Tn] = ids.shape;
    if (B === 0 || Tn === 0) throw new CliError(`${file}: "input_ids" is empty ([${B},${Tn}])`);
    let mask: Int32Array | null = null;
    if (f.has("attention_mask")) {
      const m = await read(
        "attention_mask",
        ["I64", "I32", "U8", "BOOL", "F32"],
        (v) => v === 0 || v === 1 || v === 0n || v === 1n,
        "must be 0 or 1",
      );
      if (m.shape[0] !== B || m.shape[1] !== Tn)
        throw new CliError(`${file}: "attention_mask" has shape [${m.shape.join(",")}], input_ids has [${B},${Tn}]`);
      for (let b = 0; b < B; b++)
        if (m.data.subarray(b * Tn, (b + 1) * Tn).every((v) => v === 0))
          throw new CliError(`${file}: attention_mask row ${b} is all 0 (no token to attend to); drop the row or unmask a token`);
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
  flags: FLAGS,
  async run(argv) {
    const a = parse(argv, FLAGS);
    const cfg = await readModelConfig(a.model!);
    if (a.adapter) await checkAdapterDir(a.adapter);
    await requireFile("--input", a.input!, "a .safetensors file with input_ids");
    const out = await planOutput(
      { flag: "--out", path: a.out!, kind: "file", example: "logits.safetensors" },
      { overwrite: a.overwrite, inputs: [{ flag: "--input", path: a.input }] },
    );
    const batch = await readBatch(a.input!, cfg.vocabSize);
    requireTokensFit(`--input ${a.input}: each row`, batch.T, cfg, await cliBackend(), batch.B, "split the batch or shorten the rows");
    const { model, backend } = await loadForCli(a.model!, a.adapter);
    const logits = await T.noGrad(() =>
      T.tidy(() => {
        const ids = T.tensor(batch.ids, [batch.B, batch.T], { backend });
        const mask = batch.mask ? T.tensor(batch.mask, [batch.B, batch.T], { backend }) : undefined;
        return model.forward(ids, { attentionMask: mask });
      }),
    ).data();
    const shape = model.config.head === "causal-lm" ? [batch.B, batch.T, model.config.vocabSize] : [batch.B, model.config.numLabels];
    await writeFileOutput(out, (file) =>
      writeSafetensors(file, { logits: { dtype: "F32", shape, data: Float32Array.from(logits) } }, { metadata: { format: "pt" } }),
    );
  },
};
