// Prompt templates: the Alpaca prompt the BA-LoRA/PiSSA training code wraps every query in (exact
// text), its GSM8K evaluation variant, and `{field}` templates filled from a data row.
import { Invalid, typeName } from "./records.js";

/** The Alpaca prompt of the BA-LoRA reference training code (`PROMPT` in train.py); `{instruction}` is the query. */
export const ALPACA_PROMPT =
  "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
  "### Instruction:\n{instruction}\n\n### Response:";

/** The BA-LoRA/MetaMath GSM8K evaluation prompt: the Alpaca prompt followed by " Let's think step by step." */
export const ALPACA_COT_PROMPT = `${ALPACA_PROMPT} Let's think step by step.`;

/** A template split into literal text and `{name}` placeholders (`{{` and `}}` are literal braces, as in Python). */
export type TemplatePart = { text: string } | { field: string };

/** Parses a template; throws `Error` with the column of a stray brace or an empty placeholder. */
export function parseTemplate(template: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let text = "";
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if ((c === "{" || c === "}") && template[i + 1] === c) {
      text += c;
      i++;
    } else if (c === "{") {
      const end = template.indexOf("}", i);
      const name = end < 0 ? "" : template.slice(i + 1, end);
      if (end < 0 || !/^[^{}]+$/.test(name))
        throw new Error(`the template has '{' at character ${i + 1} without a field name and '}' (write '{{' for a literal brace)`);
      if (text) parts.push({ text });
      text = "";
      parts.push({ field: name });
      i = end;
    } else if (c === "}") throw new Error(`the template has a lone '}' at character ${i + 1} (write '}}' for a literal brace)`);
    else text += c;
  }
  if (text) parts.push({ text });
  return parts;
}

/** The placeholders of a parsed template, in order of first use. */
export const templateFields = (parts: TemplatePart[]): string[] => [...new Set(parts.flatMap((p) => ("field" in p ? [p.field] : [])))];

/**
 * Fills a parsed template from a row. `{instruction}` always stands for the query field
 * (`queryField`, so the default Alpaca template works with `fields: ["query", "response"]`); any
 * other `{name}` is the row's own string (or number) field `name`.
 */
export function fillTemplate(parts: TemplatePart[], row: Record<string, unknown>, queryField: string): string | Invalid {
  let out = "";
  for (const p of parts) {
    if ("text" in p) {
      out += p.text;
      continue;
    }
    const key = p.field === "instruction" ? queryField : p.field;
    const v = row[key];
    if (v === undefined) return new Invalid(`no field '${key}' for the template's {${p.field}} (fields: ${Object.keys(row).join(", ")})`);
    if (typeof v !== "string" && typeof v !== "number")
      return new Invalid(`field '${key}' is ${typeName(v)}, expected a string for the template's {${p.field}}`);
    out += String(v);
  }
  return out;
}
