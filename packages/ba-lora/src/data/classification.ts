// Classification data (`text`, `label`) for the sequence-classification head: labels as class
// indices (integers or names) or regression targets, right-padded batches the classifier pools correctly.
import type { TokenizerLike } from "./instruction.js";
import { asObject, collectValid, type DataRecord, DataError, Invalid, type InvalidRecord, stringField, typeName } from "./records.js";

export interface ClassificationOptions {
  /** The text and label fields (default `["text", "label"]`). */
  fields?: readonly [string, string];
  /** Number of classes (the model's num_labels); 1 means regression (a float label). */
  numLabels: number;
  /** Class names by index (the config's id2label), so string labels can be used. */
  labelNames?: readonly string[];
  /** Sequences are cut to this many tokens (default 512). */
  maxLength?: number;
  skipInvalid?: boolean;
}

export interface ClassificationExample {
  line: number;
  inputIds: number[];
  /** The class index, or the target value for regression. */
  label: number;
  truncated: boolean;
}

export interface ClassificationDataset {
  examples: ClassificationExample[];
  skipped: InvalidRecord[];
  truncated: number;
}

function labelOf(v: unknown, field: string, opts: ClassificationOptions): number | Invalid {
  const C = opts.numLabels;
  if (C === 1) {
    if (typeof v === "number" && Number.isFinite(v)) return v;
    return new Invalid(`field '${field}' is ${typeName(v)}, expected a number (the model has num_labels = 1: regression)`);
  }
  if (typeof v === "string") {
    const i = opts.labelNames?.indexOf(v) ?? -1;
    if (i >= 0) return i;
    const names = opts.labelNames?.length
      ? `one of ${opts.labelNames.join(", ")}`
      : "a class index (the model config has no id2label names)";
    return new Invalid(`field '${field}' is '${v}', expected ${names}`);
  }
  if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v < C) return v;
  return new Invalid(`field '${field}' is ${JSON.stringify(v)}, expected a class index in [0, ${C}) or a class name`);
}

/** Validates and tokenizes classification records. */
export function buildClassificationDataset(
  records: DataRecord[],
  tokenizer: TokenizerLike,
  opts: ClassificationOptions,
): ClassificationDataset {
  const [textField, labelField] = opts.fields ?? ["text", "label"];
  const maxLength = opts.maxLength ?? 512;
  if (!Number.isInteger(opts.numLabels) || opts.numLabels < 1)
    throw new DataError(`numLabels must be an integer >= 1, got ${opts.numLabels}`);
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new DataError(`maxLength must be an integer >= 1, got ${maxLength}`);
  const { items, skipped } = collectValid(records, opts.skipInvalid ?? false, ({ line, value }) => {
    const row = asObject(value, `the fields '${textField}' and '${labelField}'`);
    if (row instanceof Invalid) return row;
    const text = stringField(row, textField);
    if (text instanceof Invalid) return text;
    if (!Object.hasOwn(row, labelField)) return new Invalid(`no field '${labelField}' (fields: ${Object.keys(row).join(", ")})`);
    const label = labelOf(row[labelField], labelField, opts);
    if (label instanceof Invalid) return label;
    const ids = tokenizer.encode(text);
    if (ids.length === 0) return new Invalid(`field '${textField}' has no tokens`);
    const truncated = ids.length > maxLength;
    return { line, inputIds: truncated ? ids.slice(0, maxLength) : ids, label, truncated };
  });
  return { examples: items, skipped, truncated: items.filter((e) => e.truncated).length };
}

export interface ClassificationBatch {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  /** [batchSize]: class indices (Int32Array) or regression targets (Float32Array). */
  labels: Int32Array | Float32Array;
  batchSize: number;
  seqLength: number;
}

/**
 * Pads on the right with the model's pad_token_id: the HF classifier pools at the last token that is
 * not the pad id, so without one (null) every sequence of a batch must have the same length.
 */
export function collateClassification(
  examples: ClassificationExample[],
  padTokenId: number | null,
  opts: { regression?: boolean } = {},
): ClassificationBatch {
  if (examples.length === 0) throw new DataError("collateClassification: an empty batch");
  const seqLength = Math.max(...examples.map((e) => e.inputIds.length));
  if (padTokenId === null && examples.some((e) => e.inputIds.length !== seqLength))
    throw new DataError(
      "the model config has no pad_token_id, so the classifier cannot find the last token of a padded sequence; " +
        "set pad_token_id in config.json or use batch size 1",
    );
  const B = examples.length;
  const inputIds = new Int32Array(B * seqLength).fill(padTokenId ?? 0);
  const attentionMask = new Int32Array(B * seqLength);
  examples.forEach((e, b) => {
    inputIds.set(e.inputIds, b * seqLength);
    attentionMask.fill(1, b * seqLength, b * seqLength + e.inputIds.length);
  });
  const labels = opts.regression ? Float32Array.from(examples, (e) => e.label) : Int32Array.from(examples, (e) => e.label);
  return { inputIds, attentionMask, labels, batchSize: B, seqLength };
}
