# Golden values and gradients of BA-LoRA's loss terms from PyTorch (float64), written independently of
# the TypeScript code from the definitions in DESIGN.md §3: fixed logits with prompt and padding rows,
# both presets and every option. Run: python3 scripts/golden/regularizers.py (torch ≥ 1.13).
import json
import math
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20261201)
torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "packages", "regularizers", "test", "fixtures", "golden.json")


def f32(t):
    return t.float().double()


def flat(t):
    return [float(f"{v:.10g}") for v in t.detach().reshape(-1).tolist()]


# ---- inputs: B = 2 sequences of T = 10, V = 29; sequence 1 ends in 3 padding positions ----------
B, T, V = 2, 10, 29
zs0 = f32(torch.randn(B, T, V) * 2)
zs0[0, 4, 7] = 9.0  # a confident row
zt0 = f32(zs0 + torch.randn(B, T, V) * 0.7)
labels = torch.randint(0, V, (B, T))
labels[0, :3] = -100  # prompt
labels[1, :2] = -100  # prompt
labels[1, 7:] = -100  # padding

# NLU: B = 6 examples, C = 4 classes
BN, C = 6, 4
us0 = f32(torch.randn(BN, C) * 1.5)
ut0 = f32(us0 + torch.randn(BN, C) * 0.5)
ulabels = torch.randint(0, C, (BN,))


def mask_of(mode):
    if mode == "shifted":
        m = torch.zeros(B, T)
        m[:, :-1] = (labels[:, 1:] != -100).double()
        return m
    if mode == "unshifted":
        return (labels != -100).double()
    return torch.ones(B, T)


def task_nlg(zs):
    targets = torch.full_like(labels, -100)
    targets[:, :-1] = labels[:, 1:]
    count = (targets != -100).sum().clamp(min=1)
    return F.cross_entropy(zs.reshape(-1, V), targets.reshape(-1), ignore_index=-100, reduction="sum") / count


def kl_rows(zs, zt, tau):
    ls = F.log_softmax(zs / tau, -1)
    lt = F.log_softmax(zt / tau, -1)
    return (lt.exp() * (lt - ls)).sum(-1)


def consistency_nlg(zs, zt, m, tau, reduction):
    total = (kl_rows(zs, zt, tau) * m).sum()
    if reduction == "mean":
        total = total / m.sum().clamp(min=1)
    elif reduction == "batchmean":
        total = total / zs.shape[0]
    return tau * tau * total


def entropy_rows(z, topk):
    vals = z.topk(topk, -1).values if 0 < topk < z.shape[-1] else z
    lp = F.log_softmax(vals, -1)
    return -(lp.exp() * lp).sum(-1)


def diversity_nlg(zs, m, topk):
    return -(entropy_rows(zs, topk) * m).sum() / m.sum().clamp(min=1)


def svd_one(z, m, k, denominator):
    n_valid = m.sum()
    if n_valid < k or k >= z.shape[-1]:
        return None
    zm = z * m[:, None]
    s = torch.linalg.svdvals(zm)
    den = zm.norm() if denominator == "frobenius" else s.sum()
    if den <= 1e-8:
        return None
    return -s[:k].sum() / den


def svd_term(z, m, k, denominator, scope):
    if scope == "batch" or z.dim() == 2:
        v = svd_one(z.reshape(-1, z.shape[-1]), m.reshape(-1), k, denominator)
        return v if v is not None else z.sum() * 0
    vals = [svd_one(z[b], m[b], k, denominator) for b in range(z.shape[0])]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else z.sum() * 0


def factor(schedule, step, total):
    kind = schedule["kind"]
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        r = schedule.get("finalRatio", 0.1)
        return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * step / total))
    if kind == "two_phase":
        w = math.floor(schedule.get("offRatio", 0.2) * total)
        ramp = max(math.floor(schedule.get("rampRatio", 0.05) * total), 1)
        return 0.0 if step < w else min(1.0, (step - w) / ramp)
    w = max(math.floor(schedule.get("warmupRatio", 0.1) * total), 1)
    f = min(1.0, step / w)
    return f if kind == "linear_warmup" else f * f


cases = []


def nlg_case(name, config, terms, step=0, total=10):
    """terms: list of (name, lambda, schedule, fn(zs) -> value)."""
    zs = zs0.clone().requires_grad_()
    task = task_nlg(zs)
    loss = task
    values = {}
    lambdas = {}
    for tname, lam, sched, fn in terms:
        v = fn(zs)
        values[tname] = float(v.detach())
        lambdas[tname] = lam * factor(sched, step, total)
        loss = loss + lambdas[tname] * v
    loss.backward()
    cases.append(
        dict(name=name, task="nlg", config=config, step=step, total=total, loss=float(loss), taskLoss=float(task), terms=values,
             lambdas=lambdas, grad=flat(zs.grad))
    )


def nlu_case(name, config, terms, step=0, total=10):
    zs = us0.clone().requires_grad_()
    task = F.cross_entropy(zs, ulabels)
    loss = task
    values = {}
    lambdas = {}
    for tname, lam, sched, fn in terms:
        v = fn(zs)
        values[tname] = float(v.detach())
        lambdas[tname] = lam * factor(sched, step, total)
        loss = loss + lambdas[tname] * v
    loss.backward()
    cases.append(
        dict(name=name, task="nlu", config=config, step=step, total=total, loss=float(loss), taskLoss=float(task), terms=values,
             lambdas=lambdas, grad=flat(zs.grad))
    )


const = {"kind": "constant"}
cos = {"kind": "cosine", "finalRatio": 0.1}
two = {"kind": "two_phase", "offRatio": 0.2, "rampRatio": 0.05}

# presets, NLG: iclr2026 at steps 0 (regularizers 2 and 3 off) and 5 (ramped up); v5 (no mask)
for step in (0, 5):
    m = mask_of("shifted")
    nlg_case(f"iclr2026 step {step}", {"preset": "iclr2026"}, [
        ("consistency", 0.025, cos, lambda z, m=m: consistency_nlg(z, zt0, m, 2.0, "mean")),
        ("diversity", 0.005, two, lambda z, m=m: diversity_nlg(z, m, 20)),
        ("svd", 0.005, two, lambda z, m=m: svd_term(z, m, 10, "frobenius", "batch")),
    ], step=step, total=10)
m = mask_of("none")
nlg_case("v5", {"preset": "v5"}, [
    ("consistency", 1e-4, const, lambda z: consistency_nlg(z, zt0, m, 1.0, "batchmean")),
    ("diversity", 3e-4, const, lambda z: diversity_nlg(z, m, 0)),
    ("svd", 1e-4, const, lambda z: svd_term(z, m, 3, "sum", "sequence")),
], step=3, total=10)

# every option, one term at a time (λ = 1, constant), on top of the task loss
for mode in ("shifted", "unshifted", "none"):
    m = mask_of(mode)
    for tau in (1.0, 2.0):
        for red in ("mean", "batchmean", "sum"):
            nlg_case(f"consistency {mode} tau {tau} {red}",
                     {"preset": "lora", "maskMode": mode, "consistency": {"lambda": 1, "schedule": "constant", "options": {"tau": tau, "reduction": red}}},
                     [("consistency", 1, const, lambda z, m=m, tau=tau, red=red: consistency_nlg(z, zt0, m, tau, red))])
    for topk in (0, 5, 20):
        nlg_case(f"diversity {mode} top {topk}",
                 {"preset": "lora", "maskMode": mode, "diversity": {"lambda": 1, "schedule": "constant", "options": {"topK": topk}}},
                 [("diversity", 1, const, lambda z, m=m, topk=topk: diversity_nlg(z, m, topk))])
    for k in (3, 10):
        for den in ("frobenius", "sum"):
            for scope in ("batch", "sequence"):
                nlg_case(f"svd {mode} k {k} {den} {scope}",
                         {"preset": "lora", "maskMode": mode,
                          "svd": {"lambda": 1, "schedule": "constant", "options": {"k": k, "denominator": den, "scope": scope}}},
                         [("svd", 1, const, lambda z, m=m, k=k, den=den, scope=scope: svd_term(z, m, k, den, scope))])

# NLU
ones = torch.ones(BN)


def kl_nlu(z, tau):
    return tau * tau * kl_rows(z, ut0, tau).mean()


def mse_nlu(z):
    return F.mse_loss(F.normalize(z, dim=-1), F.normalize(ut0, dim=-1))


def cov_nlu(z):
    zc = z - z.mean(0, keepdim=True)
    cov = zc.T @ zc / (z.shape[0] - 1)
    return ((cov ** 2).sum() - (torch.diagonal(cov) ** 2).sum()) / z.shape[1]


nlu_case("nlu iclr2026 step 5", {"preset": "iclr2026", "taskType": "nlu"}, [
    ("consistency", 0.025, cos, lambda z: kl_nlu(z, 2.0)),
    ("diversity", 0.005, two, cov_nlu),
    ("svd", 0.005, two, lambda z: svd_term(z, ones, 10, "frobenius", "batch")),  # k = 10 ≥ C: vacuous
], step=5)
nlu_case("nlu v5", {"preset": "v5", "taskType": "nlu"}, [
    ("consistency", 1e-4, const, mse_nlu),
    ("diversity", 3e-4, const, cov_nlu),
    ("svd", 1e-4, const, lambda z: svd_term(z, ones, 3, "sum", "batch")),
])
nlu_case("nlu svd k 2 frobenius", {"preset": "lora", "taskType": "nlu", "svd": {"lambda": 1, "schedule": "constant", "options": {"k": 2}}},
         [("svd", 1, const, lambda z: svd_term(z, ones, 2, "frobenius", "batch"))])

data = dict(
    torch=torch.__version__,
    nlg=dict(B=B, T=T, V=V, student=flat(zs0), teacher=flat(zt0), labels=[int(x) for x in labels.reshape(-1)]),
    nlu=dict(B=BN, C=C, student=flat(us0), teacher=flat(ut0), labels=[int(x) for x in ulabels]),
    cases=cases,
)
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump(data, f, separators=(",", ":"))
print(f"wrote {len(cases)} cases to {os.path.relpath(OUT)}")
