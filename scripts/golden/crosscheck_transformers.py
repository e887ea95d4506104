# Checks every fixture written by hf_mirror.py against REAL transformers (eager attention): logits, loss,
# hidden states and gradients, plus the safetensors bytes against the `safetensors` package.
# Run: /tmp/hfenv/bin/python scripts/golden/crosscheck_transformers.py [fixture ...]
# Exit status 1 when any f32 value is off by more than 1e-5 (abs + rel) or a bf16 value by more than 1 bf16 ulp.
import json
import os
import sys
import tempfile

import safetensors
import safetensors.torch
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(ROOT, "packages", "models", "test", "fixtures")

TOL_F32 = 1e-5
failures = []


def report(label, got, want, kind="f32"):
    got, want = got.detach().float(), want.detach().float()
    if got.shape != want.shape:
        print(f"  {label:44s} SHAPE {tuple(got.shape)} != {tuple(want.shape)}")
        failures.append(label)
        return
    diff = (got - want).abs()
    mad = float(diff.max()) if diff.numel() else 0.0
    rel = float((diff / want.abs().clamp_min(1e-30)).max()) if diff.numel() else 0.0
    if kind == "f32":
        ok = bool((diff <= TOL_F32 + TOL_F32 * want.abs()).all())
        extra = ""
    else:  # bf16 values stored as f32: count elements that differ, and by how many bf16 ulps
        ulp = torch.pow(2.0, torch.floor(torch.log2(want.abs().clamp_min(1e-30))) - 7)
        ulps = diff / ulp
        n = int((diff > 0).sum())
        ok = bool((ulps <= 1.0).all())
        extra = f" differing {n}/{diff.numel()}, max {float(ulps.max()):.2g} ulp"
    print(f"  {label:44s} max abs {mad:.3e}  max rel {rel:.3e}{extra}{'' if ok else '  <-- FAIL'}")
    if not ok:
        failures.append(label)


def check_bytes(d):
    """Our writer must produce what safetensors' Rust writer produces for the same tensors (the Rust writer
    orders multi-key __metadata__ by HashMap order, so only that may differ)."""
    notes = []
    for f in sorted(os.listdir(d)):
        if not f.endswith(".safetensors"):
            continue
        path = os.path.join(d, f)
        tensors = safetensors.torch.load_file(path)
        with safetensors.safe_open(path, "pt") as fh:
            meta = fh.metadata()
        ours = open(path, "rb").read()
        ref = safetensors.torch.save(tensors, metadata=meta)
        if ours == ref:
            notes.append(f"{f} identical")
            continue
        n1, n2 = int.from_bytes(ours[:8], "little"), int.from_bytes(ref[:8], "little")
        h1, h2 = json.loads(ours[8 : 8 + n1]), json.loads(ref[8 : 8 + n2])
        if h1 == h2 and list(h1)[1:] == list(h2)[1:] and ours[8 + n1 :] == ref[8 + n2 :]:
            notes.append(f"{f} identical up to __metadata__ key order")
        else:
            print(f"  bytes {f}: differ from safetensors.torch.save  <-- FAIL")
            failures.append(f"bytes {f}")
    print("  safetensors vs Rust writer: " + "; ".join(notes))


def load_model(d, cfg, dtype, **overrides):
    arch = cfg["architectures"][0]
    cls = AutoModelForSequenceClassification if arch.endswith("ForSequenceClassification") else AutoModelForCausalLM
    m = cls.from_pretrained(d, dtype=dtype, attn_implementation="eager", **overrides)
    assert type(m).__name__ == arch, (type(m).__name__, arch)
    return m.eval()


last_layer = []


def run(m, g):
    last_layer.clear()
    layers = m.model.layers
    hook = layers[len(layers) - 1].register_forward_hook(lambda mod, i, o: last_layer.append(o[0] if isinstance(o, tuple) else o))
    out = m(
        input_ids=g["input_ids"],
        attention_mask=g["attention_mask"],
        labels=g["labels"],
        output_hidden_states=True,
    )
    hook.remove()
    return out


def check_fixture(name):
    d = os.path.join(FIXTURES, name)
    print(f"{name}")
    g = safetensors.torch.load_file(os.path.join(d, "golden.safetensors"))
    with safetensors.safe_open(os.path.join(d, "golden.safetensors"), "pt") as fh:
        meta = fh.metadata()
    cfg = json.load(open(os.path.join(d, "config.json")))
    check_bytes(d)

    # config as transformers reads it
    hf_cfg = AutoConfig.from_pretrained(d)
    with tempfile.TemporaryDirectory() as tmp:
        hf_cfg.save_pretrained(tmp)
        resaved = json.load(open(os.path.join(tmp, "config.json")))
    changed = sorted(k for k in set(cfg) | set(resaved) if cfg.get(k, "<absent>") != resaved.get(k, "<absent>"))
    if changed:
        print("  config re-saved by transformers differs in: " + ", ".join(
            f"{k}: {json.dumps(cfg.get(k, '<absent>'))} -> {json.dumps(resaved.get(k, '<absent>'))}" for k in changed))

    tok = AutoTokenizer.from_pretrained(d)
    if len(tok) != cfg["vocab_size"]:
        print(f"  tokenizer size {len(tok)} != vocab_size {cfg['vocab_size']}  <-- FAIL")
        failures.append(f"{name} tokenizer size")

    bf16 = meta["dtype"] == "bfloat16"
    overrides = {"hidden_act": meta["activation"]} if "activation" in meta else {}
    if overrides:
        print(f"  (loaded with {overrides}; see hf_mirror.py GEMMA_ACT)")
    m = load_model(d, cfg, torch.bfloat16 if bf16 else torch.float32, **overrides)
    rot = m.model.rotary_emb
    report("rope.inv_freq", rot.inv_freq, g["rope.inv_freq"])
    if rot.inv_freq.dtype != torch.float32:
        print(f"  note: inv_freq buffer dtype {rot.inv_freq.dtype}")
    kind = "bf16" if bf16 else "f32"
    if bf16:
        with torch.no_grad():
            out = run(m, g)
    else:
        out = run(m, g)
        out.loss.backward()
    report("logits", out.logits, g["logits"], kind)
    report("loss", out.loss, g["loss"], "f32" if not bf16 else "bf16")
    hs = out.hidden_states  # (embeddings, layer 0 out, ..., layer L-2 out, final norm out)
    L = cfg["num_hidden_layers"]
    assert len(hs) == L + 1
    report("embeddings", hs[0], g["embeddings"], kind)
    for i in range(L - 1):
        report(f"layer_output.{i}", hs[i + 1], g[f"layer_output.{i}"], kind)
    report(f"layer_output.{L - 1}", last_layer[0], g[f"layer_output.{L - 1}"], kind)
    report("final_hidden", hs[L], g["final_hidden"], kind)
    if "pool_index" in g:
        pad = cfg["pad_token_id"]
        ids = g["input_ids"]
        idx = (torch.arange(ids.shape[-1], dtype=torch.int32) * (ids != pad).to(torch.int32)).argmax(-1)
        assert torch.equal(idx.long(), g["pool_index"]), (idx, g["pool_index"])
    if not bf16:
        params = dict(m.named_parameters())  # tied weights appear once
        want_names = {k[5:] for k in g if k.startswith("grad.")}
        if set(params) != want_names:
            print(f"  parameter names differ: hf-only {sorted(set(params) - want_names)}, golden-only {sorted(want_names - set(params))}  <-- FAIL")
            failures.append(f"{name} grad names")
        worst = None
        for k, p in params.items():
            if p.grad is None or ("grad." + k) not in g:
                continue
            diff = (p.grad - g["grad." + k]).abs()
            mad = float(diff.max())
            bad = not bool((diff <= TOL_F32 + TOL_F32 * g["grad." + k].abs()).all())
            if bad:
                report("grad." + k, p.grad, g["grad." + k])
            if worst is None or mad > worst[1]:
                worst = (k, mad, float((diff / g["grad." + k].abs().clamp_min(1e-30)).max()))
        print(f"  {'grads (' + str(len(params)) + ' params), worst ' + worst[0]:44s} max abs {worst[1]:.3e}")
    if bf16:
        m32 = load_model(d, cfg, torch.float32, **overrides)
        with torch.no_grad():
            o32 = run(m32, g)
        report("logits_f32 (bf16 weights, f32 compute)", o32.logits, g["logits_f32"])
        report("loss_f32", o32.loss, g["loss_f32"])
    for extra in [k for k in g if k.startswith("logits_exact_")]:
        act = extra[len("logits_exact_"):]
        mv = load_model(d, cfg, torch.float32)  # config.json as it stands
        print(f"  (vanilla load: config hidden_act {mv.config.hidden_act!r} -> {type(mv.model.layers[0].mlp.act_fn).__name__})")
        with torch.no_grad():
            ov = run(mv, g)
        report(f"{extra} (vanilla transformers)", ov.logits, g[extra])
        report(f"loss_exact_{act}", ov.loss, g[f"loss_exact_{act}"])


def main():
    torch.manual_seed(0)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, safetensors {safetensors.__version__}")
    names = sys.argv[1:] or sorted(
        n for n in os.listdir(FIXTURES) if os.path.isfile(os.path.join(FIXTURES, n, "golden.safetensors"))
    )
    for n in names:
        check_fixture(n)
    if failures:
        print(f"FAILED: {failures}")
        sys.exit(1)
    print("all fixtures match")


if __name__ == "__main__":
    main()
