// What the benchmark scripts share: generated LLaMA configs (no checkpoint download), random weights drawn
// the same way in every bench, and the result printer (JSON lines with --json, key=value pairs otherwise).

/** An HF config.json of a LLaMA; the defaults are the ~110M model (H 768, 12 layers and heads, I 2048, V 32000, tied). */
export function llamaConfig({ vocab = 32000, hidden = 768, intermediate = 2048, layers = 12, heads = 12, tied = true } = {}) {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: heads,
    max_position_embeddings: 1024,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: tied,
  };
}

/**
 * A `buildModel` weight source: matrices N(0, 1/fan_in), vectors (norms) ones, from one seeded generator.
 * `T` is the caller's @balora/tensor (this file sits outside the packages); `onWeight(n)` sees each size.
 */
export function randomWeights(T, backend, seed = 0, onWeight = () => {}) {
  const rng = new T.Rng(seed);
  return (_name, shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    onWeight(n);
    const v = new Float32Array(n);
    const std = shape.length === 1 ? 0 : 1 / Math.sqrt(shape[1]);
    for (let i = 0; i < n; i++) v[i] = shape.length === 1 ? 1 : rng.normal() * std;
    return T.tensor(v, shape, { backend });
  };
}

/** Prints one result row: a JSON line with `json`, else `key=value` pairs (numbers to 4 digits, objects as JSON). */
export function resultPrinter(json) {
  const show = (v) => (typeof v === "number" ? +v.toPrecision(4) : typeof v === "object" && v !== null ? JSON.stringify(v) : v);
  return (o) =>
    console.log(
      json
        ? JSON.stringify(o)
        : Object.entries(o)
            .map(([k, v]) => `${k}=${show(v)}`)
            .join("  "),
    );
}
