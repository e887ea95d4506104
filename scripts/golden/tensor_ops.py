# Golden values for @balora/tensor ops from PyTorch (float64, HF transformers' formulas), so the
# engine is checked against an independent reference. Run: /usr/bin/python3 scripts/golden/tensor_ops.py
import json
import math
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20261128)
torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "packages", "tensor", "test", "golden", "torch-ops.json")


def f32(t):
    # inputs are rounded to f32 so the TS side starts from exactly the same numbers
    return t.float().double()


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


cases = {}


def case(name, **kw):
    cases[name] = {k: (flat(v) if torch.is_tensor(v) else v) for k, v in kw.items()}


# activations (HF: gelu_pytorch_tanh, gelu, silu)
x = f32(torch.linspace(-8, 8, 41))
case("activations", x=x, gelu_tanh=F.gelu(x, approximate="tanh"), gelu=F.gelu(x), silu=F.silu(x), sigmoid=torch.sigmoid(x), tanh=torch.tanh(x))

# log-softmax at extreme logits
z = torch.tensor([[1e4, -1e4, 0.0, 9999.0, -3.0], [0.5, 0.25, -0.125, 3.0, 1e-3]])
case("log_softmax", x=z, shape=list(z.shape), y=F.log_softmax(z, -1), s=F.softmax(z, -1))


# RMSNorm: LLaMA (x·r then ·w) and Gemma ((1 + w) in f32)
def rms(x, w, eps, off):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (off + w)


for name, off, eps in [("rmsnorm_llama", 0.0, 1e-5), ("rmsnorm_gemma", 1.0, 1e-6)]:
    x = f32(torch.randn(3, 4, 19)).requires_grad_()
    w = f32(torch.randn(19) * 0.3 + (1 - off)).requires_grad_()
    g = f32(torch.randn(3, 4, 19))
    y = rms(x, w, eps, off)
    y.backward(g)
    case(name, x=x, w=w, g=g, shape=list(x.shape), eps=eps, off=off, y=y, dx=x.grad, dw=w.grad)


# RoPE, HF rotate_half with f32 angles (inv_freq and positions as HF computes them)
def rotate_half(x):
    d = x.shape[-1] // 2
    return torch.cat((-x[..., d:], x[..., :d]), dim=-1)


D, base = 16, 10000.0
inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))  # f32, as HF
pos = torch.tensor([[0, 1, 2, 3], [5, 100, 4095, 70000]])
freqs = (inv_freq[None, :, None].float() @ pos[:, None, :].float()).transpose(1, 2)  # [B,T,D/2] f32
emb = torch.cat((freqs, freqs), dim=-1)
cos, sin = emb.cos().double(), emb.sin().double()
x = f32(torch.randn(2, 3, 4, D)).requires_grad_()  # [B, H, T, D]
g = f32(torch.randn(2, 3, 4, D))
y = x * cos[:, None] + rotate_half(x) * sin[:, None]
y.backward(g)
case("rope", x=x, g=g, shape=list(x.shape), inv_freq=inv_freq.double(), pos=pos, y=y, dx=x.grad)


# Attention, HF eager: repeat_kv, scale, softcap, additive min mask, softmax, ·v
def attn(q, k, v, scale, window, key_mask, cap):
    B, Hq, T, Dh = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    rep = Hq // Hkv
    k = k[:, :, None].expand(B, Hkv, rep, S, Dh).reshape(B, Hq, S, Dh)
    v = v[:, :, None].expand(B, Hkv, rep, S, Dh).reshape(B, Hq, S, Dh)
    s = q @ k.transpose(-1, -2) * scale
    if cap:
        s = cap * torch.tanh(s / cap)
    qi = torch.arange(T)[:, None] + (S - T)
    kj = torch.arange(S)[None, :]
    ok = kj <= qi
    if window:
        ok = ok & (kj > qi - window)
    ok = ok[None, None] & (key_mask[:, None, None, :] != 0)
    # A query whose keys are all masked (a left-padded position) gets zeros, as in balora; finite
    # fill values keep its gradients finite too.
    p = torch.softmax(s.masked_fill(~ok, -1e30), -1) * ok
    return p @ v


for name, (B, Hq, Hkv, T, S, Dh, window, cap, scale) in {
    "attention_gqa": (2, 4, 2, 5, 5, 8, 0, 0.0, 8 ** -0.5),
    "attention_window_softcap": (1, 2, 1, 6, 6, 4, 3, 0.7, 0.9),
    "attention_cache": (1, 3, 1, 2, 7, 4, 0, 0.0, 0.5),
}.items():
    q = f32(torch.randn(B, Hq, T, Dh)).requires_grad_()
    k = f32(torch.randn(B, Hkv, S, Dh)).requires_grad_()
    v = f32(torch.randn(B, Hkv, S, Dh)).requires_grad_()
    km = torch.ones(B, S)
    if B == 2:
        km[1, 0] = 0  # a padded key in the second sequence (left padding)
    g = f32(torch.randn(B, Hq, T, Dh))
    y = attn(q, k, v, scale, window, km, cap)
    y.backward(g)
    case(name, q=q, k=k, v=v, key_mask=km, g=g, qshape=list(q.shape), kshape=list(k.shape), window=window, cap=cap, scale=scale, y=y, dq=q.grad, dk=k.grad, dv=v.grad)

# cross-entropy with ignore_index -100 (mean over counted tokens)
x = f32(torch.randn(6, 11) * 3).requires_grad_()
lab = torch.tensor([3, -100, 10, 0, -100, 7])
loss = F.cross_entropy(x, lab, ignore_index=-100)
loss.backward()
case("cross_entropy", x=x, labels=lab, shape=list(x.shape), loss=float(loss), dx=x.grad)

# AdamW, 4 steps (torch.optim.AdamW, float64)
p = torch.nn.Parameter(f32(torch.randn(7)))
p0 = p.detach().clone()
opt = torch.optim.AdamW([p], lr=3e-2, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.1)
grads = [f32(torch.randn(7)) for _ in range(4)]
for gr in grads:
    p.grad = gr.clone()
    opt.step()
case("adamw", p0=p0, grads=torch.stack(grads), lr=3e-2, b1=0.9, b2=0.95, eps=1e-6, wd=0.1, p=p)

# clip_grad_norm_
a = torch.nn.Parameter(torch.zeros(5))
b = torch.nn.Parameter(torch.zeros(3, 2))
a.grad, b.grad = f32(torch.randn(5)), f32(torch.randn(3, 2))
ga, gb = a.grad.clone(), b.grad.clone()
norm = torch.nn.utils.clip_grad_norm_([a, b], 0.5)
case("clip_grad_norm", ga=ga, gb=gb, max_norm=0.5, norm=float(norm), ca=a.grad, cb=b.grad)

# HF schedules
from math import ceil  # noqa: E402


def cosine(step, total, warm):
    if step < warm:
        return step / max(1, warm)
    prog = (step - warm) / max(1, total - warm)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * prog)))


total, ratio = 37, 0.1
warm = ceil(total * ratio)
case("cosine_schedule", total=total, ratio=ratio, factors=[cosine(s, total, warm) for s in range(total + 1)])

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as fh:
    json.dump({"torch": torch.__version__, "cases": cases}, fh, separators=(",", ":"))
print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes, torch {torch.__version__})")
