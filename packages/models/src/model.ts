// The decoder stack shared by LLaMA, Mistral, Gemma and Gemma 2 (their differences are config
// flags), with HF module names so adapters can target `model.layers.0.self_attn.q_proj`.
import * as T from "@balora/tensor";
import type { ModelConfig } from "./config.js";
import { ropeInvFreq } from "./rope.js";

type Tensor = T.Tensor;

/** Anything with a Linear's forward: a Linear, or an adapter layer wrapping one. */
export type LinearLike = T.Module & { forward(x: Tensor): Tensor };

/** Where each parameter tensor comes from when building a model. */
export type WeightSource = (name: string, shape: number[], kind: "linear" | "embedding" | "norm" | "bias") => Tensor;

/** Per-layer keys and values of earlier positions, plus their padding mask. */
export interface KVCache {
  keys: (Tensor | null)[];
  values: (Tensor | null)[];
  /** [B, S] 1/0 mask of all cached positions (null = no padding). */
  mask: Tensor | null;
  /** Number of cached positions S. */
  length: number;
}

export interface ForwardOptions {
  /** [B, T] 1 for real tokens, 0 for padding (i32 or f32). */
  attentionMask?: Tensor;
  /** [B, T] i32 positions (default: cache length + arange(T), as HF's forward). */
  positions?: Tensor;
  /** Grown in place with this call's keys and values. */
  cache?: KVCache;
  /**
   * Only these positions (flattened b·T + t, i32) get logits: [rows, V] instead of [B, T, V]. A
   * training step passes the supervised positions (see `supervisedRows`) and skips the LM head on
   * the rest (prompt and padding rows). Causal LMs only.
   */
  rows?: Tensor;
}

/**
 * Flattened positions b·T + t whose logit is supervised (labels[b][t + 1] != -100, the causal shift),
 * computed on the host from the labels the caller built; with their targets (the next labels).
 */
export function supervisedRows(labels: Int32Array, B: number, T_: number, ignoreIndex = -100): { rows: Int32Array; targets: Int32Array } {
  const rows: number[] = [];
  const targets: number[] = [];
  for (let b = 0; b < B; b++)
    for (let t = 0; t + 1 < T_; t++) {
      const y = labels[b * T_ + t + 1];
      if (y !== ignoreIndex) {
        rows.push(b * T_ + t);
        targets.push(y);
      }
    }
  return { rows: Int32Array.from(rows), targets: Int32Array.from(targets) };
}

export function emptyCache(numLayers: number): KVCache {
  return { keys: Array(numLayers).fill(null), values: Array(numLayers).fill(null), mask: null, length: 0 };
}

export function disposeCache(c: KVCache): void {
  for (const t of [...c.keys, ...c.values, c.mask]) t?.dispose();
}

/** Everything a layer needs for one forward call. */
interface Step {
  B: number;
  T: number;
  past: number;
  keyMask: Tensor | null;
  positions: Tensor | null;
  invFreq: Tensor;
  cache: KVCache | null;
}

function linear(src: WeightSource, name: string, out: number, inF: number, bias: boolean): T.Linear {
  return new T.Linear(src(`${name}.weight`, [out, inF], "linear"), bias ? src(`${name}.bias`, [out], "bias") : null);
}

export class Attention extends T.Module {
  q_proj: LinearLike;
  k_proj: LinearLike;
  v_proj: LinearLike;
  o_proj: LinearLike;
  constructor(
    readonly cfg: ModelConfig,
    readonly layerIdx: number,
    src: WeightSource,
    prefix: string,
  ) {
    super();
    const { hiddenSize: H, numHeads: Hq, numKvHeads: Hkv, headDim: D, attentionBias: b } = cfg;
    this.q_proj = linear(src, `${prefix}.q_proj`, Hq * D, H, b);
    this.k_proj = linear(src, `${prefix}.k_proj`, Hkv * D, H, b);
    this.v_proj = linear(src, `${prefix}.v_proj`, Hkv * D, H, b);
    this.o_proj = linear(src, `${prefix}.o_proj`, H, Hq * D, b);
  }

  forward(x: Tensor, s: Step): Tensor {
    const { numHeads: Hq, numKvHeads: Hkv, headDim: D } = this.cfg;
    // [B, T, n·D] → [B, n, T, D]; RoPE writes that layout itself, v needs one transposing copy.
    const heads = (proj: LinearLike, n: number, rotate: boolean) => {
      const flat = proj.forward(x);
      const split = T.reshape(flat, [s.B, s.T, n, D]);
      flat.dispose();
      let out: Tensor;
      if (rotate) out = T.rope(split, s.invFreq, { ...(s.positions ? { positions: s.positions } : { offset: s.past }), outLayout: "bhtd" });
      else {
        const t = T.transpose(split, 1, 2);
        out = T.contiguous(t);
        t.dispose();
      }
      split.dispose();
      return out;
    };
    const q = heads(this.q_proj, Hq, true);
    let k = heads(this.k_proj, Hkv, true);
    let v = heads(this.v_proj, Hkv, false);
    const c = s.cache;
    if (c) {
      const pk = c.keys[this.layerIdx];
      const pv = c.values[this.layerIdx];
      if (pk && pv) {
        const [k2, v2] = [T.concat([pk, k], 2), T.concat([pv, v], 2)];
        for (const t of [pk, pv, k, v]) t.dispose();
        [k, v] = [k2, v2];
      }
      c.keys[this.layerIdx] = T.keep(T.identity(k));
      c.values[this.layerIdx] = T.keep(T.identity(v));
    }
    const o = T.attention(q, k, v, {
      scale: this.cfg.attnScale,
      window: this.cfg.layerWindows[this.layerIdx],
      softcap: this.cfg.attnSoftcap,
      keyMask: s.keyMask ?? undefined,
      queryOffset: s.past,
    });
    for (const t of [q, k, v]) t.dispose();
    const ot = T.transpose(o, 1, 2);
    const merged = T.reshape(ot, [s.B, s.T, Hq * D]);
    for (const t of [o, ot]) t.dispose();
    const y = this.o_proj.forward(merged);
    merged.dispose();
    return y;
  }
}

export class MLP extends T.Module {
  gate_proj: LinearLike;
  up_proj: LinearLike;
  down_proj: LinearLike;
  constructor(
    readonly cfg: ModelConfig,
    src: WeightSource,
    prefix: string,
  ) {
    super();
    const { hiddenSize: H, intermediateSize: I, mlpBias: b } = cfg;
    this.gate_proj = linear(src, `${prefix}.gate_proj`, I, H, b);
    this.up_proj = linear(src, `${prefix}.up_proj`, I, H, b);
    this.down_proj = linear(src, `${prefix}.down_proj`, H, I, b);
  }

  forward(x: Tensor): Tensor {
    const g = this.gate_proj.forward(x);
    const u = this.up_proj.forward(x);
    const act = this.cfg.activation === "silu" ? "silu" : this.cfg.activation === "gelu_tanh" ? "gelu" : "geluExact";
    const m = T.gated(act, g, u);
    for (const t of [g, u]) t.dispose();
    const y = this.down_proj.forward(m);
    m.dispose();
    return y;
  }
}

function norm(cfg: ModelConfig, src: WeightSource, name: string): T.RMSNorm {
  return new T.RMSNorm(src(`${name}.weight`, [cfg.hiddenSize], "norm"), cfg.rmsNormEps, cfg.gemmaNorms ? 1 : 0);
}

export class DecoderLayer extends T.Module {
  self_attn: Attention;
  mlp: MLP;
  input_layernorm: T.RMSNorm;
  post_attention_layernorm: T.RMSNorm;
  pre_feedforward_layernorm: T.RMSNorm | null = null;
  post_feedforward_layernorm: T.RMSNorm | null = null;
  constructor(
    readonly cfg: ModelConfig,
    idx: number,
    src: WeightSource,
    prefix: string,
  ) {
    super();
    this.self_attn = new Attention(cfg, idx, src, `${prefix}.self_attn`);
    this.mlp = new MLP(cfg, src, `${prefix}.mlp`);
    this.input_layernorm = norm(cfg, src, `${prefix}.input_layernorm`);
    this.post_attention_layernorm = norm(cfg, src, `${prefix}.post_attention_layernorm`);
    if (cfg.sandwichNorms) {
      this.pre_feedforward_layernorm = norm(cfg, src, `${prefix}.pre_feedforward_layernorm`);
      this.post_feedforward_layernorm = norm(cfg, src, `${prefix}.post_feedforward_layernorm`);
    }
  }

  forward(h: Tensor, s: Step): Tensor {
    const n1 = this.input_layernorm.forward(h);
    let a = this.self_attn.forward(n1, s);
    n1.dispose();
    // Gemma 2 normalises the attention output; LLaMA's post_attention_layernorm is the MLP's input norm.
    if (this.cfg.sandwichNorms) a = this.thenDispose(a, this.post_attention_layernorm.forward(a));
    const h1 = T.add(h, a);
    a.dispose();
    const pre = this.cfg.sandwichNorms ? this.pre_feedforward_layernorm! : this.post_attention_layernorm;
    const n2 = pre.forward(h1);
    let m = this.mlp.forward(n2);
    n2.dispose();
    if (this.post_feedforward_layernorm) m = this.thenDispose(m, this.post_feedforward_layernorm.forward(m));
    const out = T.add(h1, m);
    for (const t of [h1, m]) t.dispose();
    return out;
  }

  /** Returns `next` after disposing `prev` (a layer's intermediate the graph holds if it needs it). */
  private thenDispose(prev: Tensor, next: Tensor): Tensor {
    prev.dispose();
    return next;
  }
}

/** HF's `LlamaModel` / `GemmaModel`...: embeddings, decoder layers, final norm. */
export class DecoderModel extends T.Module {
  embed_tokens: T.Embedding;
  layers: DecoderLayer[];
  norm: T.RMSNorm;
  /** RoPE inverse frequencies (not in the state dict). */
  invFreq: Tensor;
  /** Recompute each decoder layer in the backward pass instead of storing its activations. */
  gradientCheckpointing = false;
  constructor(
    readonly cfg: ModelConfig,
    src: WeightSource,
    backend: T.Backend,
  ) {
    super();
    this.embed_tokens = new T.Embedding(src("model.embed_tokens.weight", [cfg.vocabSize, cfg.hiddenSize], "embedding"));
    this.layers = Array.from({ length: cfg.numLayers }, (_, i) => new DecoderLayer(cfg, i, src, `model.layers.${i}`));
    this.norm = norm(cfg, src, "model.norm");
    this.invFreq = T.tensor(ropeInvFreq(cfg.rope, cfg.headDim), undefined, { backend });
    this.nonPersistent.add("invFreq");
  }

  /** Hidden states [B, T, H] after the final norm. */
  forward(ids: Tensor, opts: ForwardOptions = {}): Tensor {
    const [B, Tn] = ids.shape;
    const cache = opts.cache ?? null;
    const past = cache?.length ?? 0;
    let keyMask: Tensor | null = opts.attentionMask ? T.cast(opts.attentionMask, "f32") : null;
    if (cache) {
      // Keep the padding mask of every cached position so later steps still skip padded keys.
      const now = keyMask ?? (cache.mask ? T.ones([B, Tn], { backend: ids.backend }) : null);
      if (cache.mask && now) keyMask = T.concat([cache.mask, now], 1);
      else if (now && past > 0) keyMask = T.concat([T.ones([B, past], { backend: ids.backend }), now], 1);
      else keyMask = now;
      if (keyMask) {
        cache.mask?.dispose();
        cache.mask = T.keep(T.identity(keyMask));
      }
    }
    const s: Step = { B, T: Tn, past, keyMask, positions: opts.positions ?? null, invFreq: this.invFreq, cache };
    let h = this.embed_tokens.forward(ids);
    if (this.cfg.gemmaNorms) {
      // HF: hidden * torch.tensor(√H, dtype=activation dtype); the activation dtype is the weights'.
      const w = this.embed_tokens.weight.dtype;
      const scale = T.roundValues(w === "i32" ? "f32" : w, [Math.sqrt(this.cfg.hiddenSize)])[0];
      const scaled = T.mul(h, scale);
      h.dispose();
      h = scaled;
    }
    for (const layer of this.layers) {
      // With gradient checkpointing a layer keeps only its input; backward recomputes the rest.
      const next = this.gradientCheckpointing && !cache && isGradEnabledFor(h, layer) ? checkpointLayer(layer, h, s) : layer.forward(h, s);
      h.dispose();
      h = next;
    }
    if (cache) cache.length = past + Tn;
    const out = this.norm.forward(h);
    h.dispose();
    if (keyMask && keyMask !== opts.attentionMask) keyMask.dispose();
    return out;
  }
}

/** A layer under gradient checkpointing: the mask and positions are graph-held constants of the recomputation. */
function checkpointLayer(layer: DecoderLayer, h: Tensor, s: Step): Tensor {
  const constants = [s.keyMask, s.positions].filter((t): t is Tensor => t !== null);
  return T.checkpoint(
    (x, ...held) => {
      let i = 0;
      const keyMask = s.keyMask ? held[i++] : null;
      const positions = s.positions ? held[i++] : null;
      return layer.forward(x, { ...s, keyMask, positions });
    },
    [h],
    layer.trainableParameters(),
    constants,
  );
}

/** Whether a checkpointed layer would get a gradient (its input or one of its parameters trains). */
function isGradEnabledFor(h: Tensor, layer: T.Module): boolean {
  return T.isGradEnabled() && (h.requiresGrad || layer.trainableParameters().length > 0);
}

function makeHead(cfg: ModelConfig, src: WeightSource, model: DecoderModel): T.Linear {
  if (cfg.head === "sequence-classification") return linear(src, "score", cfg.numLabels, cfg.hiddenSize, false);
  if (cfg.tieWordEmbeddings) return new T.Linear(model.embed_tokens.weight);
  return linear(src, "lm_head", cfg.vocabSize, cfg.hiddenSize, false);
}

/** The decoder stack under HF's `model.` prefix; subclasses add their head. */
abstract class WithDecoder extends T.Module {
  model: DecoderModel;
  constructor(
    readonly config: ModelConfig,
    src: WeightSource,
    backend: T.Backend,
  ) {
    super();
    this.model = new DecoderModel(config, src, backend);
  }
}

/** `*ForCausalLM`: next-token logits [B, T, V]; Gemma 2's final soft-capping applied. */
export class CausalLM extends WithDecoder {
  lm_head: LinearLike;
  constructor(config: ModelConfig, src: WeightSource, backend: T.Backend) {
    super(config, src, backend);
    this.lm_head = makeHead(config, src, this.model);
  }

  forward(ids: Tensor, opts: ForwardOptions = {}): Tensor {
    let h = this.model.forward(ids, opts);
    if (opts.rows) {
      // Only the requested positions go through the LM head: gather their hidden states first.
      const flat = T.reshape(h, [-1, this.config.hiddenSize]);
      const picked = T.embedding(flat, opts.rows);
      for (const t of [flat, h]) t.dispose();
      h = picked;
    }
    const logits = this.lm_head.forward(h);
    h.dispose();
    const cap = this.config.finalSoftcap;
    if (!(cap > 0)) return logits;
    const scaled = T.mul(logits, 1 / cap);
    const th = T.tanh(scaled);
    const capped = T.mul(th, cap);
    for (const t of [logits, scaled, th]) t.dispose();
    return capped;
  }

  /**
   * HF's causal-LM loss: logits at t predict labels[t + 1] (`T.causalTargets`, the same positions
   * the regularizers count); -100 labels and the last position do not count; mean over counted tokens.
   */
  loss(logits: Tensor, labels: Tensor): Tensor {
    const { targets, mask } = T.causalTargets(labels);
    mask.dispose();
    const loss = T.crossEntropy(logits, targets);
    targets.dispose();
    return loss;
  }
}

/** `*ForSequenceClassification`: logits [B, C] of the last non-padding token (HF pooling). */
export class SequenceClassifier extends WithDecoder {
  score: LinearLike;
  constructor(config: ModelConfig, src: WeightSource, backend: T.Backend) {
    super(config, src, backend);
    this.score = makeHead(config, src, this.model);
  }

  forward(ids: Tensor, opts: ForwardOptions = {}): Tensor {
    const h = this.model.forward(ids, opts);
    const pooled = T.tidy(() => {
      const [B, Tn, H] = h.shape;
      // HF: last index whose token is not pad_token_id (the last position when there is no pad id).
      const pad = this.config.padTokenId;
      const pos = T.arange(0, Tn, 1, { backend: ids.backend });
      const weighted = pad === null ? T.expand(pos, [B, Tn]) : T.mul(T.ne(T.cast(ids, "f32"), pad), pos);
      const last = T.cast(T.add(T.cast(T.argmax(weighted), "f32"), T.arange(0, B * Tn, Tn, { backend: ids.backend })), "i32");
      return T.embedding(T.reshape(h, [B * Tn, H]), last);
    });
    h.dispose();
    const logits = this.score.forward(pooled);
    pooled.dispose();
    return logits;
  }

  /** Cross-entropy over classes (num_labels > 1) or MSE (num_labels = 1), as HF. */
  loss(logits: Tensor, labels: Tensor): Tensor {
    if (this.config.numLabels === 1) return T.tidy(() => T.mean(T.square(T.sub(T.reshape(logits, [-1]), T.cast(labels, "f32")))));
    return T.crossEntropy(logits, labels);
  }
}

export type LanguageModel = CausalLM | SequenceClassifier;
