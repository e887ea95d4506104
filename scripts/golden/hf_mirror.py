# Tiny HF-format checkpoints (LLaMA, Mistral, Gemma, Gemma2) with golden logits, loss and gradients from a
# plain-torch mirror of transformers' eager modeling code, so @balora/models is checked against HF numerics.
# Run: /usr/bin/python3 scripts/golden/hf_mirror.py   (Debian python3-torch only; run tokenizers_golden.py first)
#
# Each fixture lands in packages/models/test/fixtures/<name>/ as a complete HF model directory (config.json,
# generation_config.json, model*.safetensors [+ index], tokenizer.json, tokenizer_config.json) plus
# golden.safetensors. crosscheck_transformers.py checks every golden against real transformers.
#
# Numerics mirrored from transformers 5.17 (models/{llama,mistral,gemma,gemma2}/modeling_*.py, eager attention,
# masking_utils.py, modeling_rope_utils.py, loss/loss_utils.py, modeling_layers.py):
# - embeddings: Gemma multiplies by sqrt(H) as a tensor of the weight dtype (bf16: sqrt(32) -> 5.65625)
# - RMSNorm LLaMA/Mistral: f32 x * rsqrt(mean(x^2) + eps), cast to the activation dtype, THEN * w (in that dtype)
#   RMSNorm Gemma/Gemma2: everything in f32, * (1 + w.float()), cast at the end
# - RoPE: inv_freq in f32 (llama3 scaling on f32 tensors), angles = inv_freq x positions in f32, cos/sin in f32,
#   cast to the activation dtype, q*cos + rotate_half(q)*sin in the activation dtype
# - attention: q k^T * scale (scale = head_dim^-0.5, Gemma2 query_pre_attn_scalar^-0.5); Gemma2 softcap
#   (s / cap, tanh, * cap) BEFORE the mask; + additive mask (0 or finfo(dtype).min); softmax in f32 then cast
#   to the activation dtype; GQA repeat_kv (query head h uses kv head h // (Hq/Hkv))
# - masks: key j visible to query i iff j <= i and attention_mask[j] == 1 (and j > i - window for sliding
#   layers: Mistral when sliding_window is set, Gemma2 layers whose layer_types entry is sliding_attention)
# - MLP: down(act(gate(x)) * up(x)); act = ACT2FN[hidden_act] (LLaMA, Mistral, Gemma) or
#   ACT2FN[hidden_activation] (Gemma2); see GEMMA_ACT below for the legacy Gemma config
# - logits = final_norm(h) @ W^T (tied: W = embed_tokens); Gemma2 final softcap (l / cap, tanh, * cap)
# - causal-LM loss: logits.float(), labels padded with -100 on the right then shifted left, mean CE over
#   counted tokens; sequence classification: score at the last non-pad token
#   ((arange(T) * (ids != pad)).argmax(-1)), CE over the pooled logits
# - bf16: every torch op rounds its result to bf16; matmuls and activations compute in f32 and round once
import json
import math
import os
import shutil
import sys
import zlib

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import save_file, save_sharded  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(ROOT, "packages", "models", "test", "fixtures")
TOKENIZERS = os.path.join(FIXTURES, "tokenizers")

B, T = 2, 8
BF16 = torch.bfloat16

# Gemma v1 configs on the Hub carry the legacy "hidden_act": "gelu" next to "hidden_activation":
# "gelu_pytorch_tanh". Gemma runs tanh-GELU (reference doc §5, transformers PR #29402, 4.38-4.4x), but
# transformers 5.17's GemmaMLP uses ACT2FN[config.hidden_act] and so runs EXACT (erf) GELU for such a config.
# The gemma-f32 goldens use tanh-GELU (logits, loss, grads) and add logits_exact_gelu / loss_exact_gelu: what
# transformers 5.17 returns for that config.json as it stands.
GEMMA_ACT = "gelu_pytorch_tanh"

ACT = {
    "silu": F.silu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,  # exact erf GELU
}


# ---------------------------------------------------------------------------------------------------------
# config.json parsing, as a loader must do it


def head_dim(c):
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def rope_parameters(c):
    """v5 `rope_parameters` or v4 `rope_theta` + `rope_scaling` (rope_type or legacy `type`)."""
    rp = c.get("rope_parameters")
    if rp is None:
        rp = dict(c.get("rope_scaling") or {})
        rp.setdefault("rope_theta", c.get("rope_theta", 10000.0))
    rp = dict(rp)
    rp.setdefault("rope_type", rp.get("type", "default"))
    if rp["rope_type"] == "llama3":
        rp.setdefault("original_max_position_embeddings", c["max_position_embeddings"])
    return rp


def tied(c):
    # transformers 5.17 defaults: LLaMA/Mistral false, Gemma/Gemma2 true
    return c.get("tie_word_embeddings", c["model_type"] in ("gemma", "gemma2"))


def activation(c):
    if c["model_type"] == "gemma2":
        return c.get("hidden_activation", "gelu_pytorch_tanh")
    return c.get("hidden_act", "silu")


def layer_windows(c):
    """Sliding window per layer, None for full attention."""
    L = c["num_hidden_layers"]
    if c["model_type"] == "mistral":
        return [c.get("sliding_window")] * L
    if c["model_type"] == "gemma2":
        types = c.get("layer_types") or ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(L)]
        return [c["sliding_window"] if t == "sliding_attention" else None for t in types]
    return [None] * L


def inv_freq(c):
    rp = rope_parameters(c)
    dim = head_dim(c)
    base = float(rp["rope_theta"])
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))  # f32
    if rp["rope_type"] == "default":
        return inv
    if rp["rope_type"] != "llama3":
        raise ValueError(f"rope_type {rp['rope_type']} not mirrored")
    factor, lo, hi = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
    old = rp["original_max_position_embeddings"]
    low_wl, high_wl = old / lo, old / hi
    wl = 2 * math.pi / inv  # f32
    inv_l = torch.where(wl > low_wl, inv / factor, inv)
    smooth = (old / wl - lo) / (hi - lo)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wl < high_wl) * ~(wl > low_wl)
    return torch.where(medium, smoothed, inv_l)


# ---------------------------------------------------------------------------------------------------------
# the model


def lin(x, w):
    # bf16: f32 accumulation, one rounding (what torch's CPU bf16 GEMM does)
    if x.dtype == BF16:
        return F.linear(x.float(), w.float()).to(BF16)
    return F.linear(x, w)


def matmul(a, b):
    if a.dtype == BF16:
        return torch.matmul(a.float(), b.float()).to(BF16)
    return torch.matmul(a, b)


def mul_scalar(t, s):
    # torch >= 2: bf16 tensor * python float multiplies by the f32 scalar, rounds once (1.13 rounded s to bf16)
    return (t.float() * s).to(BF16) if t.dtype == BF16 else t * s


def div_scalar(t, s):
    return (t.float() / s).to(BF16) if t.dtype == BF16 else t / s


def rms_llama(x, w, eps):
    dt = x.dtype
    h = x.to(torch.float32)
    var = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(var + eps)
    return w * h.to(dt)


def rms_gemma(x, w, eps):
    out = x.float()
    out = out * torch.rsqrt(out.pow(2).mean(-1, keepdim=True) + eps)
    out = out * (1.0 + w.float())
    return out.type_as(x)


def rotate_half(x):
    d = x.shape[-1] // 2
    return torch.cat((-x[..., d:], x[..., :d]), dim=-1)


def repeat_kv(x, n):
    b, h, s, d = x.shape
    if n == 1:
        return x
    return x[:, :, None].expand(b, h, n, s, d).reshape(b, h * n, s, d)


def forward(c, P, ids, am, dtype, act_name=None, head="causal"):
    """Returns (logits, extras). P: name -> tensor already in `dtype` (bf16 or f32)."""
    arch = c["model_type"]
    gemma = arch in ("gemma", "gemma2")
    H, L = c["hidden_size"], c["num_hidden_layers"]
    nh = c["num_attention_heads"]
    nkv = c.get("num_key_value_heads") or nh
    D = head_dim(c)
    eps = c["rms_norm_eps"]
    norm = rms_gemma if gemma else rms_llama
    act_f32 = ACT[act_name or activation(c)]

    def act(t):
        # torch >= 2 computes bf16 activations in f32 and rounds once (torch 1.13 rounded inside silu/gelu-tanh)
        return act_f32(t.float()).to(BF16) if t.dtype == BF16 else act_f32(t)

    Bn, Tn = ids.shape

    x = F.embedding(ids, P["model.embed_tokens.weight"])
    if gemma:
        x = x * torch.tensor(H**0.5, dtype=torch.float32).to(dtype)
    hidden = [x]

    # additive masks [B, 1, T, T]
    qi = torch.arange(Tn)[:, None]
    kj = torch.arange(Tn)[None, :]
    keep_key = am[:, None, None, :].bool()
    zero, neg = torch.tensor(0.0, dtype=dtype), torch.tensor(torch.finfo(dtype).min, dtype=dtype)

    def mask(window):
        ok = kj <= qi
        if window is not None:
            ok = ok & (kj > qi - window)
        return torch.where(ok[None, None] & keep_key, zero, neg)

    masks = [mask(w) for w in layer_windows(c)]

    inv = inv_freq(c)
    pos = torch.arange(Tn)[None, :].float()
    freqs = (inv[None, :, None].float() @ pos[:, None, :]).transpose(1, 2)  # [1, T, D/2] f32
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(dtype)[:, None], emb.sin().to(dtype)[:, None]  # attention_scaling = 1

    if arch == "gemma2":
        scaling = c["query_pre_attn_scalar"] ** -0.5
        softcap = c.get("attn_logit_softcapping")
    else:
        scaling = D**-0.5
        softcap = None

    for i in range(L):
        p = f"model.layers.{i}."
        residual = x
        h = norm(x, P[p + "input_layernorm.weight"], eps)
        q = lin(h, P[p + "self_attn.q_proj.weight"]).view(Bn, Tn, -1, D).transpose(1, 2)
        k = lin(h, P[p + "self_attn.k_proj.weight"]).view(Bn, Tn, -1, D).transpose(1, 2)
        v = lin(h, P[p + "self_attn.v_proj.weight"]).view(Bn, Tn, -1, D).transpose(1, 2)
        q = (q * cos) + (rotate_half(q) * sin)
        k = (k * cos) + (rotate_half(k) * sin)
        k = repeat_kv(k, nh // nkv)
        v = repeat_kv(v, nh // nkv)
        w = mul_scalar(matmul(q, k.transpose(2, 3)), scaling)
        if softcap is not None:
            w = div_scalar(w, softcap)
            w = torch.tanh(w)
            w = mul_scalar(w, softcap)
        w = w + masks[i]
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        o = matmul(w, v).transpose(1, 2).reshape(Bn, Tn, -1)
        a = lin(o, P[p + "self_attn.o_proj.weight"])
        if arch == "gemma2":
            a = norm(a, P[p + "post_attention_layernorm.weight"], eps)
        x = residual + a
        residual = x
        pre = "pre_feedforward_layernorm" if arch == "gemma2" else "post_attention_layernorm"
        h = norm(x, P[p + pre + ".weight"], eps)
        m = lin(act(lin(h, P[p + "mlp.gate_proj.weight"])) * lin(h, P[p + "mlp.up_proj.weight"]), P[p + "mlp.down_proj.weight"])
        if arch == "gemma2":
            m = norm(m, P[p + "post_feedforward_layernorm.weight"], eps)
        x = residual + m
        hidden.append(x)

    x = norm(x, P["model.norm.weight"], eps)
    extras = {"hidden": hidden, "final": x}
    if head == "seqcls":
        logits = lin(x, P["score.weight"])  # [B, T, C]
        pad = c["pad_token_id"]
        idx = (torch.arange(Tn, dtype=torch.int32) * (ids != pad).to(torch.int32)).argmax(-1)
        extras["pool_index"] = idx
        return logits[torch.arange(Bn), idx], extras
    W = P["model.embed_tokens.weight"] if tied(c) else P["lm_head.weight"]
    logits = lin(x, W)
    cap = c.get("final_logit_softcapping") if arch == "gemma2" else None
    if cap is not None:
        logits = div_scalar(logits, cap)
        logits = torch.tanh(logits)
        logits = mul_scalar(logits, cap)
    return logits, extras


def causal_lm_loss(logits, labels):
    lg = logits.float()
    shift = F.pad(labels, (0, 1), value=-100)[..., 1:]
    return F.cross_entropy(lg.reshape(-1, lg.shape[-1]), shift.reshape(-1), ignore_index=-100)


def seqcls_loss(pooled, labels):
    return F.cross_entropy(pooled.reshape(-1, pooled.shape[-1]), labels.reshape(-1))


# ---------------------------------------------------------------------------------------------------------
# parameters


def param_shapes(c, head, num_labels=None):
    """HF state-dict names and shapes, in module registration order (the order save_pretrained shards in)."""
    H, I, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    nh = c["num_attention_heads"]
    nkv = c.get("num_key_value_heads") or nh
    D = head_dim(c)
    out = [("model.embed_tokens.weight", (V, H))]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "self_attn.q_proj.weight", (nh * D, H)),
            (p + "self_attn.k_proj.weight", (nkv * D, H)),
            (p + "self_attn.v_proj.weight", (nkv * D, H)),
            (p + "self_attn.o_proj.weight", (H, nh * D)),
            (p + "mlp.gate_proj.weight", (I, H)),
            (p + "mlp.up_proj.weight", (I, H)),
            (p + "mlp.down_proj.weight", (H, I)),
            (p + "input_layernorm.weight", (H,)),
            (p + "post_attention_layernorm.weight", (H,)),
        ]
        if c["model_type"] == "gemma2":
            out += [(p + "pre_feedforward_layernorm.weight", (H,)), (p + "post_feedforward_layernorm.weight", (H,))]
    out.append(("model.norm.weight", (H,)))
    if head == "seqcls":
        out.append(("score.weight", (num_labels, H)))
    elif not tied(c):
        out.append(("lm_head.weight", (V, H)))
    return out


def make_params(c, head, gen, embed_std, qk_gain=1.0, num_labels=None):
    """Seeded random weights large enough that every feature moves the logits: projections N(0, 1/fan_in),
    LLaMA norms 1 + N(0, 0.1^2), Gemma norms N(0, 0.1^2) (used as 1 + w)."""
    gemma = c["model_type"] in ("gemma", "gemma2")
    P = {}
    for name, shape in param_shapes(c, head, num_labels):
        if name == "model.embed_tokens.weight":
            t = torch.randn(shape, generator=gen) * embed_std
        elif len(shape) == 1:
            t = torch.randn(shape, generator=gen) * 0.1 + (0.0 if gemma else 1.0)
        else:
            t = torch.randn(shape, generator=gen) / math.sqrt(shape[1])
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                t = t * qk_gain
        P[name] = t.float().contiguous()
    return P


# ---------------------------------------------------------------------------------------------------------
# fixtures


def read_tokenizer(family):
    d = os.path.join(TOKENIZERS, family)
    with open(os.path.join(d, "tokenizer.json"), encoding="utf-8") as fh:
        tj = json.load(fh)
    ids = set(tj["model"]["vocab"].values()) | {a["id"] for a in tj["added_tokens"]}
    special = sorted(a["id"] for a in tj["added_tokens"] if a["special"])
    assert ids == set(range(len(ids))), "tokenizer ids must be contiguous"
    return d, len(ids), special, {a["content"]: a["id"] for a in tj["added_tokens"]}


def base_config_v4(model_type, arch, V, **kw):
    c = {
        "architectures": [arch],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 256,
        "model_type": model_type,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "transformers_version": "4.48.0",
        "use_cache": True,
        "vocab_size": V,
    }
    c.update(kw)
    return dict(sorted(c.items()))


def base_config_v5(model_type, arch, V, **kw):
    c = base_config_v4(model_type, arch, V, transformers_version="5.17.0")
    c.update(kw)
    return dict(sorted(c.items()))


def fixture_specs():
    l2_dir, l2_V, _, l2 = read_tokenizer("llama2")
    l3_dir, l3_V, _, l3 = read_tokenizer("llama3")
    g_dir, g_V, _, g = read_tokenizer("gemma")
    llama_v4 = dict(head_dim=8, hidden_act="silu", mlp_bias=False, pretraining_tp=1, rms_norm_eps=1e-05)
    specs = []

    # LLaMA-3.1-style llama3 RoPE scaling in the v4 config form (rope_theta + rope_scaling). With head_dim 8,
    # theta 1e4 and original_max_position_embeddings 128 the four frequencies cover all three llama3 bands:
    # wavelength 6.3 (< 32: kept), 62.8 (between 32 and 128: smoothed), 628 and 6283 (> 128: divided by 8).
    specs.append(dict(
        name="llama-f32", family="llama2", tok=l2_dir, dtype=torch.float32, shards=1, head="causal",
        embed_std=1.0, seed_lengths=(8, 6),
        config=base_config_v4(
            "llama", "LlamaForCausalLM", l2_V, bos_token_id=l2["<s>"], eos_token_id=l2["</s>"], **llama_v4,
            rope_scaling={"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                          "original_max_position_embeddings": 128, "rope_type": "llama3"},
            rope_theta=10000.0, tie_word_embeddings=False, torch_dtype="float32"),
        variants={"rope_default": {"rope_scaling": None}},
    ))
    # LLaMA-3 style, transformers v5 config form, tied embeddings, bf16, 3 shards
    specs.append(dict(
        name="llama-bf16-sharded", family="llama3", tok=l3_dir, dtype=BF16, shards=3, head="causal",
        embed_std=0.5, seed_lengths=(8, 6),
        gen_eos=[l3["<|end_of_text|>"], l3["<|eot_id|>"]],
        config=base_config_v5(
            "llama", "LlamaForCausalLM", l3_V, bos_token_id=l3["<|begin_of_text|>"],
            eos_token_id=l3["<|end_of_text|>"], dtype="bfloat16", pad_token_id=None, **llama_v4,
            rope_parameters={"rope_theta": 500000.0, "rope_type": "default"}, tie_word_embeddings=True),
    ))
    # Mistral v0.1 style (v4 form), sliding window 4 < T, explicit head_dim 16 != hidden/heads = 8
    specs.append(dict(
        name="mistral-f32-sharded", family="llama2", tok=l2_dir, dtype=torch.float32, shards=2, head="causal",
        embed_std=1.0, seed_lengths=(8, 6),
        config=base_config_v4(
            "mistral", "MistralForCausalLM", l2_V, bos_token_id=l2["<s>"], eos_token_id=l2["</s>"], head_dim=16,
            hidden_act="silu", rms_norm_eps=1e-05, rope_theta=10000.0, sliding_window=4, tie_word_embeddings=False,
            torch_dtype="float32"),
        variants={"no_window": {"sliding_window": None}},
    ))
    # Gemma v1 as on the Hub (v4 form): legacy hidden_act "gelu" + hidden_activation, no tie_word_embeddings
    # key (Gemma default: tied), head_dim 16 != 32/4
    specs.append(dict(
        name="gemma-f32", family="gemma", tok=g_dir, dtype=torch.float32, shards=1, head="causal",
        embed_std=0.5, seed_lengths=(8, 6), act=GEMMA_ACT, extra_act="gelu",
        config=base_config_v4(
            "gemma", "GemmaForCausalLM", g_V, bos_token_id=g["<bos>"], eos_token_id=g["<eos>"],
            pad_token_id=g["<pad>"], head_dim=16, hidden_act="gelu", hidden_activation="gelu_pytorch_tanh",
            rms_norm_eps=1e-06, rope_scaling=None, rope_theta=10000.0, torch_dtype="float32"),
    ))
    # Gemma v1 in bf16, transformers v5 config form (hidden_act gelu_pytorch_tanh, as v5 writes it)
    specs.append(dict(
        name="gemma-bf16", family="gemma", tok=g_dir, dtype=BF16, shards=1, head="causal",
        embed_std=0.5, seed_lengths=(8, 5),
        config=base_config_v5(
            "gemma", "GemmaForCausalLM", g_V, bos_token_id=g["<bos>"], eos_token_id=g["<eos>"],
            pad_token_id=g["<pad>"], head_dim=16, hidden_act="gelu_pytorch_tanh", rms_norm_eps=1e-06,
            rope_parameters={"rope_theta": 10000.0, "rope_type": "default"}, tie_word_embeddings=True,
            use_bidirectional_attention=None, dtype="bfloat16"),
    ))
    # Gemma2 (v5 form): head_dim 12 (!= 32/4 and != query_pre_attn_scalar 16), attention softcap 50 with q/k
    # weights scaled x3 so scores reach the tanh's curved part, final softcap 3.0 (logits are O(3)),
    # sliding window 4 on layer 0 (layer_types), global layer 1
    specs.append(dict(
        name="gemma2-f32-sharded", family="gemma", tok=g_dir, dtype=torch.float32, shards=2, head="causal",
        embed_std=0.5, qk_gain=3.0, seed_lengths=(8, 6),
        config=base_config_v5(
            "gemma2", "Gemma2ForCausalLM", g_V, bos_token_id=g["<bos>"], eos_token_id=g["<eos>"],
            pad_token_id=g["<pad>"], head_dim=12, hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-06,
            attn_logit_softcapping=50.0, final_logit_softcapping=3.0, query_pre_attn_scalar=16,
            sliding_window=4, layer_types=["sliding_attention", "full_attention"],
            rope_parameters={"rope_theta": 10000.0, "rope_type": "default"}, tie_word_embeddings=True,
            use_bidirectional_attention=None, dtype="float32"),
        variants={
            "no_attn_softcap": {"attn_logit_softcapping": None},
            "no_final_softcap": {"final_logit_softcapping": None},
            "no_window": {"layer_types": ["full_attention", "full_attention"]},
        },
    ))
    # LlamaForSequenceClassification, 3 labels, pad_token_id 0 (<unk>) marks padding for pooling
    specs.append(dict(
        name="llama-seqcls-f32", family="llama2", tok=l2_dir, dtype=torch.float32, shards=1, head="seqcls",
        embed_std=1.0, seed_lengths=(8, 5), num_labels=3, cls_labels=[2, 0],
        config=base_config_v5(
            "llama", "LlamaForSequenceClassification", l2_V, bos_token_id=l2["<s>"], eos_token_id=l2["</s>"],
            pad_token_id=l2["<unk>"], **llama_v4, dtype="float32",
            id2label={"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"},
            label2id={"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2},
            rope_parameters={"rope_theta": 10000.0, "rope_type": "default"}, tie_word_embeddings=False),
    ))
    return specs


def make_inputs(spec, gen, specials):
    c = spec["config"]
    V = c["vocab_size"]
    normal = torch.tensor([i for i in range(V) if i not in set(specials)])
    pad = c.get("pad_token_id")
    pad = c["eos_token_id"] if pad is None else pad  # LLaMA/Mistral have no pad token: pad with eos
    ids = torch.full((B, T), pad, dtype=torch.int64)
    am = torch.zeros((B, T), dtype=torch.int64)
    for b, n in enumerate(spec["seed_lengths"]):
        ids[b, 0] = c["bos_token_id"]
        ids[b, 1:n] = normal[torch.randint(len(normal), (n - 1,), generator=gen)]
        am[b, :n] = 1
    if spec["head"] == "seqcls":
        labels = torch.tensor(spec["cls_labels"], dtype=torch.int64)
    else:
        labels = ids.clone()
        labels[am == 0] = -100
        labels[:, :2] = -100  # a two-token "prompt"
    return ids, am, labels


def config_variant(c, change):
    c = json.loads(json.dumps(c))
    for k, v in change.items():
        if k == "rope_scaling" and v is None:
            c.pop("rope_scaling", None)
        else:
            c[k] = v
    return c


def hidden_goldens(ex, conv):
    """embeddings (after Gemma's scale), layer_output.i (residual stream after decoder layer i), final_hidden
    (after the final norm). transformers' output_hidden_states = (embeddings, layer_output.0, ...,
    layer_output.L-2, final_hidden): its last entry is already normed."""
    out = {"embeddings": conv(ex["hidden"][0]), "final_hidden": conv(ex["final"])}
    for i, h in enumerate(ex["hidden"][1:]):
        out[f"layer_output.{i}"] = conv(h)
    return out


def build(spec):
    name, c, dtype, head = spec["name"], spec["config"], spec["dtype"], spec["head"]
    seed = zlib.crc32(name.encode())
    gen = torch.Generator().manual_seed(seed)
    P = make_params(c, head, gen, spec["embed_std"], spec.get("qk_gain", 1.0), spec.get("num_labels"))
    _, _, specials, _ = read_tokenizer(spec["family"])
    ids, am, labels = make_inputs(spec, gen, specials)
    loss_fn = seqcls_loss if head == "seqcls" else causal_lm_loss

    golden = {"input_ids": ids, "attention_mask": am, "labels": labels, "rope.inv_freq": inv_freq(c)}
    if dtype == BF16:
        Pb = {k: v.to(BF16) for k, v in P.items()}
        weights = Pb
        logits, ex = forward(c, Pb, ids, am, BF16, spec.get("act"), head)
        golden["logits"] = logits.float()
        golden["loss"] = loss_fn(logits, labels).float()
        golden.update(hidden_goldens(ex, lambda t: t.float()))
        Pf = {k: v.float() for k, v in Pb.items()}
        lf, _ = forward(c, Pf, ids, am, torch.float32, spec.get("act"), head)
        golden["logits_f32"] = lf
        golden["loss_f32"] = loss_fn(lf, labels)
    else:
        weights = P
        Pg = {k: v.clone().requires_grad_() for k, v in P.items()}
        logits, ex = forward(c, Pg, ids, am, torch.float32, spec.get("act"), head)
        loss = loss_fn(logits, labels)
        loss.backward()
        golden["logits"] = logits.detach()
        golden["loss"] = loss.detach()
        golden.update(hidden_goldens(ex, lambda t: t.detach()))
        for k, v in Pg.items():
            golden["grad." + k] = v.grad.detach().clone()
        if spec.get("extra_act"):
            with torch.no_grad():
                le, _ = forward(c, P, ids, am, torch.float32, spec["extra_act"], head)
            golden[f"logits_exact_{spec['extra_act']}"] = le
            golden[f"loss_exact_{spec['extra_act']}"] = loss_fn(le, labels)
    if head == "seqcls":
        golden["pool_index"] = ex["pool_index"].to(torch.int64)

    # how much each feature moves the f32 logits (a feature that changes nothing is not tested)
    effects = {}
    with torch.no_grad():
        Pf = {k: v.to(dtype).float() for k, v in P.items()}
        ref, _ = forward(c, Pf, ids, am, torch.float32, spec.get("act"), head)
        for vname, change in spec.get("variants", {}).items():
            alt, _ = forward(config_variant(c, change), Pf, ids, am, torch.float32, spec.get("act"), head)
            effects[vname] = float((alt - ref).abs().max())
        if spec.get("extra_act"):
            effects["exact_gelu"] = float((golden[f"logits_exact_{spec['extra_act']}"] - ref).abs().max())
    return weights, golden, effects


def write_fixture(spec, weights, golden):
    d = os.path.join(FIXTURES, spec["name"])
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    c = spec["config"]
    with open(os.path.join(d, "config.json"), "w") as fh:
        json.dump(c, fh, indent=2, sort_keys=True)
        fh.write("\n")
    if spec["head"] == "causal":
        g = {"_from_model_config": True, "bos_token_id": c["bos_token_id"], "eos_token_id": spec.get("gen_eos", c["eos_token_id"])}
        if c.get("pad_token_id") is not None:
            g["pad_token_id"] = c["pad_token_id"]
        if c["transformers_version"].startswith("5"):
            g.update(output_attentions=False, output_hidden_states=False, use_cache=True)
        g["transformers_version"] = c["transformers_version"]
        with open(os.path.join(d, "generation_config.json"), "w") as fh:
            json.dump(dict(sorted(g.items())), fh, indent=2)
            fh.write("\n")
    save_sharded(weights, d, spec["shards"])
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(spec["tok"], f), os.path.join(d, f))
    meta = {
        "format": "pt",
        "generator": "scripts/golden/hf_mirror.py",
        "torch": torch.__version__,
        "dtype": str(spec["dtype"]).replace("torch.", ""),
        "head": spec["head"],
    }
    if spec.get("act"):
        meta["activation"] = spec["act"]
    save_file(golden, os.path.join(d, "golden.safetensors"), meta)
    return d


def main():
    torch.set_num_threads(1)  # deterministic reductions
    only = set(sys.argv[1:])
    for spec in fixture_specs():
        if only and spec["name"] not in only:
            continue
        weights, golden, effects = build(spec)
        d = write_fixture(spec, weights, golden)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        eff = ", ".join(f"{k} {v:.3g}" for k, v in effects.items())
        print(f"{spec['name']}: loss {float(golden['loss']):.6f}, {size} bytes" + (f", feature effects on logits: {eff}" if eff else ""))


if __name__ == "__main__":
    main()
