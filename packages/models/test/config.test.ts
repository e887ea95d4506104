import { describe, expect, it } from "vitest";
import { ModelConfigError, parseConfig, ropeInvFreq } from "../src/index.js";

const llama = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 4096,
};

describe("config.json", () => {
  it("fills HF defaults (kv heads = heads, head_dim = H / heads, theta 1e4, untied)", () => {
    const c = parseConfig(llama);
    expect(c.family).toBe("llama");
    expect(c.numKvHeads).toBe(32);
    expect(c.headDim).toBe(128);
    expect(c.rope).toMatchObject({ type: "default", theta: 10000 });
    expect(c.tieWordEmbeddings).toBe(false);
    expect(c.activation).toBe("silu");
    expect(c.attnScale).toBeCloseTo(128 ** -0.5, 15);
  });
  it("reads both rope forms: rope_theta + rope_scaling, and v5 rope_parameters", () => {
    const old = parseConfig({
      ...llama,
      rope_theta: 500000,
      rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    });
    expect(old.rope).toEqual({ type: "llama3", theta: 500000, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
    const v5 = parseConfig({ ...llama, rope_parameters: { rope_type: "default", rope_theta: 1e6 } });
    expect(v5.rope).toMatchObject({ type: "default", theta: 1e6 });
    expect(() => parseConfig({ ...llama, rope_scaling: { type: "yarn", factor: 4 } })).toThrow(
      /rope_scaling type "yarn" is not supported \(supported: default, linear, llama3\)/,
    );
  });
  it("Gemma: head_dim from config, tanh GELU despite legacy hidden_act, tied, (1 + w) norms", () => {
    const g = parseConfig({
      ...llama,
      architectures: ["GemmaForCausalLM"],
      hidden_size: 3072,
      num_attention_heads: 16,
      head_dim: 256,
      hidden_act: "gelu",
    });
    expect(g.headDim).toBe(256);
    expect(g.activation).toBe("gelu_tanh");
    expect(g.tieWordEmbeddings).toBe(true);
    expect(g.gemmaNorms).toBe(true);
  });
  it("Gemma 2: alternating sliding window (even layers), softcaps, query_pre_attn_scalar", () => {
    const g = parseConfig({
      ...llama,
      architectures: ["Gemma2ForCausalLM"],
      num_hidden_layers: 4,
      head_dim: 256,
      sliding_window: 4096,
      query_pre_attn_scalar: 144,
      attn_logit_softcapping: 50,
      final_logit_softcapping: 30,
    });
    expect(g.layerWindows).toEqual([4096, 0, 4096, 0]);
    expect(g.attnScale).toBeCloseTo(144 ** -0.5, 15);
    expect([g.attnSoftcap, g.finalSoftcap]).toEqual([50, 30]);
    const typed = parseConfig({
      ...llama,
      architectures: ["Gemma2ForCausalLM"],
      num_hidden_layers: 2,
      sliding_window: 8,
      layer_types: ["full_attention", "sliding_attention"],
    });
    expect(typed.layerWindows).toEqual([0, 8]);
  });
  it("Mistral: sliding window on every layer, null means none", () => {
    expect(
      parseConfig({ ...llama, architectures: ["MistralForCausalLM"], num_hidden_layers: 2, sliding_window: 4096 }).layerWindows,
    ).toEqual([4096, 4096]);
    expect(
      parseConfig({ ...llama, architectures: ["MistralForCausalLM"], num_hidden_layers: 2, sliding_window: null }).layerWindows,
    ).toEqual([0, 0]);
  });
  it("rejects unknown architectures listing the supported ones, and bad fields by name", () => {
    expect(() => parseConfig({ ...llama, architectures: ["GPT2LMHeadModel"] })).toThrow(ModelConfigError);
    expect(() => parseConfig({ ...llama, architectures: ["GPT2LMHeadModel"] })).toThrow(
      /architecture "GPT2LMHeadModel" is not supported; supported: LlamaForCausalLM, MistralForCausalLM/,
    );
    expect(() => parseConfig({ ...llama, hidden_size: "big" })).toThrow(/field "hidden_size" must be a number/);
    expect(() => parseConfig({ ...llama, vocab_size: undefined })).toThrow(/field "vocab_size" is missing/);
    expect(() => parseConfig({ ...llama, num_key_value_heads: 5 })).toThrow(/multiple of num_key_value_heads/);
  });
  it("refuses values that would silently give NaN or garbage, naming the field", () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ rms_norm_eps: -1 }, /field "rms_norm_eps" must be > 0, got -1/],
      [{ rms_norm_eps: 0 }, /field "rms_norm_eps" must be > 0, got 0/],
      [{ rope_theta: 0 }, /field "rope_theta" must be > 0, got 0/],
      [{ rope_theta: -10000 }, /field "rope_theta" must be > 0/],
      [{ rope_parameters: { rope_type: "default", rope_theta: -1 } }, /rope_parameters: field "rope_theta" must be > 0/],
      [{ rope_scaling: { type: "linear", factor: 0 } }, /rope_scaling: field "factor" must be > 0/],
      [
        {
          rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 4, high_freq_factor: 4, original_max_position_embeddings: 8192 },
        },
        /high_freq_factor \(4\) must be greater than low_freq_factor \(4\)/,
      ],
      [{ rope_scaling: "llama3" }, /field "rope_scaling" must be an object or null/],
      [{ hidden_size: 0 }, /field "hidden_size" must be a positive integer, got 0/],
      [{ num_hidden_layers: 0 }, /field "num_hidden_layers" must be a positive integer/],
      [{ num_attention_heads: 0 }, /field "num_attention_heads" must be a positive integer/],
      [{ vocab_size: 0 }, /field "vocab_size" must be a positive integer/],
      [{ intermediate_size: 2.5 }, /field "intermediate_size" must be a positive integer, got 2.5/],
      [{ max_position_embeddings: 0 }, /field "max_position_embeddings" must be a positive integer/],
      [{ head_dim: 0 }, /head_dim 0 must be a positive even integer/],
      [{ hidden_size: 4100 }, /head_dim 128.125 must be a positive even integer \(it defaults to hidden_size \/ num_attention_heads/],
      [{ architectures: ["MistralForCausalLM"], sliding_window: 0 }, /field "sliding_window" must be a positive integer/],
      [{ architectures: ["Gemma2ForCausalLM"], query_pre_attn_scalar: 0 }, /field "query_pre_attn_scalar" must be > 0/],
      [{ architectures: ["Gemma2ForCausalLM"], attn_logit_softcapping: -50 }, /field "attn_logit_softcapping" must be >= 0/],
      [{ architectures: ["LlamaForSequenceClassification"], num_labels: 0 }, /field "num_labels" must be a positive integer/],
    ];
    for (const [patch, re] of bad) expect(() => parseConfig({ ...llama, ...patch }), JSON.stringify(patch)).toThrow(re);
    // the defaults and null ("not set") stay accepted
    expect(parseConfig({ ...llama, rms_norm_eps: null, rope_theta: null }).rmsNormEps).toBe(1e-6);
    expect(parseConfig({ ...llama, architectures: ["Gemma2ForCausalLM"], attn_logit_softcapping: null }).attnSoftcap).toBe(0);
  });
});

describe("RoPE inverse frequencies", () => {
  it("default: 1/θ^(2j/D) in f32", () => {
    const inv = ropeInvFreq(
      { type: "default", theta: 10000, factor: 1, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
      8,
    );
    expect(Array.from(inv)).toEqual([1, 0.10000000149011612, 0.009999999776482582, 0.0010000000474974513]);
  });
  it("llama3 scaling leaves high frequencies, divides low ones by the factor, blends the middle", () => {
    const base = { theta: 500000, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };
    const plain = ropeInvFreq({ ...base, type: "default" }, 128);
    const scaled = ropeInvFreq({ ...base, type: "llama3" }, 128);
    expect(scaled[0]).toBe(plain[0]);
    expect(scaled[63]).toBeCloseTo(plain[63] / 8, 12);
    const wl = (i: number) => (2 * Math.PI) / plain[i];
    const mid = plain.findIndex((_, i) => wl(i) > 8192 / 4 && wl(i) < 8192);
    expect(scaled[mid]).toBeLessThan(plain[mid]);
    expect(scaled[mid]).toBeGreaterThan(plain[mid] / 8);
  });
});
