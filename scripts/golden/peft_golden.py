# Golden LoRA adapters written by REAL peft, for @balora/lora's interchange tests.
#
# Run (from anywhere): /tmp/hfenv/bin/python scripts/golden/peft_golden.py [case ...]
# Writes packages/ba-lora/test/fixtures/peft/<case>/ (adapter dir exactly as `PeftModel.save_pretrained` writes it,
# golden.safetensors, case.json) and packages/ba-lora/test/fixtures/peft/probes.json (what peft accepts/rejects when
# loading hand-made configs; error and warning texts). Deterministic: seeded, single-threaded, PYTHONHASHSEED=0
# (peft turns target_modules into a set and saves list(set), so the JSON order depends on string hashing), and every
# case directory is wiped first. Every adapter written is reloaded with PeftModel.from_pretrained on a fresh base and
# checked with scripts/golden/peft_check.py (no warnings, exact key set, logits within 1e-5 here).
#
# golden.safetensors (F32 unless noted; [2, 8, V] logits; eval mode, lora_dropout 0):
#   input_ids, attention_mask   I64 [2, 8], copied from the base fixture's golden.safetensors
#   logits                      base + adapter, unmerged
#   logits_merged               after merge_and_unload()
#   merged.<module>.weight      merged weight of every adapted module (<module> = HF path, e.g. model.layers.0.self_attn.q_proj)
#   + per-case extras (see case.json "golden_tensors" and the final report)
import os
import sys

if os.environ.get("PYTHONHASHSEED") != "0":  # set iteration order inside peft must not vary between runs
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import contextlib  # noqa: E402
import copy  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import warnings  # noqa: E402

import peft  # noqa: E402
import safetensors  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import peft_check  # noqa: E402
import safetensors_io  # noqa: E402  (deterministic __metadata__ order; the Rust writer uses HashMap order)

BASES = "packages/models/test/fixtures"  # relative to ROOT: becomes base_model_name_or_path in adapter_config.json
OUT = os.path.join(ROOT, "packages", "ba-lora", "test", "fixtures", "peft")
REL_OUT = os.path.relpath(OUT, ROOT)
SCRIPT = "scripts/golden/peft_golden.py"
DELTA_TARGET = 0.06  # std of s*B@A per module after randomisation (base weights have std ~0.12-0.18)
TOL_MERGE = 1e-5
TOL_RELOAD = 1e-5
MIN_EFFECT = 1e-3

torch.set_num_threads(1)
os.chdir(ROOT)
transformers.utils.logging.disable_progress_bar()

report = []  # (case, line)
summary = {}


def say(case, msg):
    print(f"[{case}] {msg}", flush=True)


# ----------------------------------------------------------------------------------------------------------------
# helpers


def base_dir(name):
    return f"{BASES}/{name}"


def load_base(name):
    return peft_check.load_base(base_dir(name))


def base_inputs(name):
    g = safetensors.torch.load_file(os.path.join(base_dir(name), "golden.safetensors"))
    return {"input_ids": g["input_ids"], "attention_mask": g["attention_mask"]}


logits_of = peft_check.logits_of


def maxabs(a, b):
    return float((a.float() - b.float()).abs().max())


def lora_layers(model, adapter="default"):
    """[(HF module path, LoraLayer)] sorted by path, for the layers holding `adapter`."""
    out = []
    for name, mod in model.named_modules():
        if isinstance(mod, LoraLayer) and adapter in mod.lora_A:
            out.append((name.removeprefix("base_model.model."), mod))
    return sorted(out, key=lambda t: t[0])


def randomize(model, adapter, gen, dora_jitter=None):
    """Overwrite lora_A/lora_B of `adapter` (module order = sorted path): A ~ N(0, 1/in); B ~ N(0, sigma^2) with
    sigma = DELTA_TARGET*sqrt(in)/(s*sqrt(r)) so std(s*B@A) ~ DELTA_TARGET. DoRA: magnitude *= 1 + N(0, jitter)."""
    with torch.no_grad():
        for _, mod in lora_layers(model, adapter):
            A, B = mod.lora_A[adapter].weight, mod.lora_B[adapter].weight
            r, fan_in = A.shape
            s = float(mod.scaling[adapter])
            A.copy_(torch.randn(A.shape, generator=gen, dtype=torch.float32) / math.sqrt(fan_in))
            sigma = DELTA_TARGET * math.sqrt(fan_in) / (s * math.sqrt(r))
            B.copy_(torch.randn(B.shape, generator=gen, dtype=torch.float32) * sigma)
            if dora_jitter is not None:
                m = mod.lora_magnitude_vector[adapter].weight
                m.mul_(1.0 + dora_jitter * torch.randn(m.shape, generator=gen, dtype=torch.float32))


def module_info(model, adapter="default"):
    return {
        p: {
            "r": int(mod.r[adapter]),
            "lora_alpha": mod.lora_alpha[adapter],
            "scaling": float(mod.scaling[adapter]),
            "use_dora": bool(mod.use_dora.get(adapter, False)),
            "in_features": int(mod.in_features),
            "out_features": int(mod.out_features),
        }
        for p, mod in lora_layers(model, adapter)
    }


def merged_model(peft_model, adapter_names=None):
    """merge_and_unload on a deep copy (the original stays usable)."""
    return copy.deepcopy(peft_model).merge_and_unload(adapter_names=adapter_names).eval()


def fresh_dir(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


def save_golden(path, tensors, extra_meta=None):
    meta = {
        "format": "pt",
        "generator": SCRIPT,
        "peft": peft.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    meta.update(extra_meta or {})
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    safetensors_io.save_file(tensors, path, metadata=meta)


def save_case_json(path, info):
    with open(path, "w") as f:
        f.write(json.dumps(info, indent=2, sort_keys=True) + "\n")


def adapter_keys(adapter_dir):
    with safetensors.safe_open(os.path.join(adapter_dir, "adapter_model.safetensors"), "pt") as fh:
        return {k: list(fh.get_slice(k).get_shape()) for k in sorted(fh.keys())}


def reload_check(case, adapter_dir, base_name_or_dir, inputs, want, label, adapter_name="default"):
    """Fresh base + PeftModel.from_pretrained(adapter_dir): no warnings, exact keys, logits == want (<= TOL_RELOAD)."""
    bd = base_name_or_dir if os.path.isdir(base_name_or_dir) else base_dir(base_name_or_dir)
    model, problems = peft_check.load_adapter_strict(peft_check.load_base(bd), adapter_dir, adapter_name)
    _, kp = peft_check.key_check(model, adapter_dir, adapter_name)
    problems += kp
    got = logits_of(model, inputs)
    d = maxabs(got, want)
    if d > TOL_RELOAD:
        problems.append(f"reloaded logits differ by {d:.3e}")
    if problems:
        raise SystemExit(f"[{case}] reload {label}: " + "; ".join(problems))
    say(case, f"reload {label}: peft loads it cleanly, max |dlogits| {d:.2e}")
    return got


def run_checker(case, adapter_dir, base_dir_, golden, key="logits"):
    """Exercise the CLI checker on a peft-written adapter (must pass)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = peft_check.main([adapter_dir, base_dir_, golden, golden, "--key", key])
    if rc != 0:
        print(buf.getvalue())
        raise SystemExit(f"[{case}] peft_check.py rejects {adapter_dir}")
    res = json.loads(buf.getvalue())
    say(case, f"peft_check.py {os.path.relpath(adapter_dir, OUT)} --key {key}: ok (max abs {res['max_abs_diff']:.1e})")


def effect_and_merge(case, logits, base_logits, merged_logits):
    eff = maxabs(logits, base_logits)
    mrg = maxabs(logits, merged_logits)
    say(case, f"max |logits - base| = {eff:.4e}   max |unmerged - merged| = {mrg:.2e}")
    if not eff > MIN_EFFECT:
        raise SystemExit(f"[{case}] adapter effect {eff} too small")
    if not mrg <= TOL_MERGE:
        raise SystemExit(f"[{case}] merged differs by {mrg}")
    summary.setdefault(case, {}).update({"max_abs_vs_base": eff, "max_abs_unmerged_vs_merged": mrg})
    return eff, mrg


def finish_case(case, case_dir, golden, info):
    gpath = os.path.join(case_dir, "golden.safetensors")
    save_golden(gpath, golden)
    info["golden_tensors"] = sorted(golden)
    info["generator"] = SCRIPT
    info["versions"] = {"peft": peft.__version__, "transformers": transformers.__version__, "torch": torch.__version__}
    info["delta_scale"] = (
        f"after get_peft_model every lora_A ~ N(0, 1/in) and lora_B ~ N(0, sigma^2) with sigma = {DELTA_TARGET}*sqrt(in)/(s*sqrt(r)) "
        f"(so std(s*B@A) ~ {DELTA_TARGET}), drawn from torch.Generator().manual_seed(seed) in sorted-module-path order, A then B per module"
    )
    info.update(summary.get(case, {}))
    save_case_json(os.path.join(case_dir, "case.json"), info)
    return gpath


def config_as_saved(adapter_dir):
    return json.load(open(os.path.join(adapter_dir, "adapter_config.json")))


# ----------------------------------------------------------------------------------------------------------------
# standard single-adapter case


def simple_case(case, base_name, cfg_kwargs, seed, notes, dora_jitter=None, expect=None):
    case_dir = os.path.join(OUT, case)
    fresh_dir(case_dir)
    inputs = base_inputs(base_name)
    base = load_base(base_name)
    base_logits = logits_of(base, inputs)
    cfg = LoraConfig(task_type="CAUSAL_LM", **cfg_kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = get_peft_model(base, cfg)
    for w in caught:
        say(case, f"get_peft_model warning: {w.message}")
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    randomize(model, "default", gen, dora_jitter=dora_jitter)
    mods = module_info(model)
    if expect is not None:
        expect(mods)
    logits = logits_of(model, inputs)
    merged = merged_model(model)
    logits_merged = logits_of(merged, inputs)
    effect_and_merge(case, logits, base_logits, logits_merged)
    golden = {**inputs, "logits": logits, "logits_merged": logits_merged}
    for p in mods:
        golden[f"merged.{p}.weight"] = merged.get_submodule(p).weight
    model.save_pretrained(case_dir)
    reload_check(case, case_dir, base_name, inputs, logits, "adapter")
    info = {
        "case": case,
        "base": base_name,
        "base_dir": base_dir(base_name),
        "base_overrides": peft_check.base_overrides(base_dir(base_name)),
        "lora_config_args": {"task_type": "CAUSAL_LM", **cfg_kwargs},
        "adapter_config_saved": config_as_saved(case_dir),
        "adapter_tensors": adapter_keys(case_dir),
        "adapted_modules": mods,
        "seed": seed,
        "notes": notes,
    }
    gpath = finish_case(case, case_dir, golden, info)
    run_checker(case, case_dir, base_dir(base_name), gpath)
    return case_dir


def case_llama_lora():
    return simple_case(
        "llama-lora",
        "llama-f32",
        dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
        seed=1,
        notes="Plain LoRA, everything else default (lora_dropout 0, init_lora_weights true, bias none). s = 8/4 = 2.",
    )


def case_mistral_rslora_patterns():
    def expect(mods):
        for p, m in mods.items():
            r = 2 if p.endswith("o_proj") else 6 if p == "model.layers.1.mlp.down_proj" else 4
            a = 3 if p.endswith("k_proj") else 16
            assert m["r"] == r and m["lora_alpha"] == a, (p, m)
            assert abs(m["scaling"] - a / math.sqrt(r)) < 1e-12, (p, m)
        assert len(mods) == 14, sorted(mods)

    return simple_case(
        "mistral-rslora-patterns",
        "mistral-f32-sharded",
        dict(
            r=4,
            lora_alpha=16,
            use_rslora=True,
            target_modules="all-linear",
            rank_pattern={"o_proj": 2, "layers.1.mlp.down_proj": 6},
            alpha_pattern={"k_proj": 3},
        ),
        seed=2,
        expect=expect,
        notes=(
            "rsLoRA: s = alpha/sqrt(r) per module (r, alpha after rank_pattern/alpha_pattern): o_proj r=2 s=16/sqrt(2); "
            "layers.1.mlp.down_proj r=6 s=16/sqrt(6); k_proj alpha=3 s=3/2; others s=16/2=8. 'all-linear' = every "
            "nn.Linear except the output embedding (lm_head); peft rewrites target_modules to the FULL module names "
            "because there are < 20 of them (MIN_TARGET_MODULES_FOR_OPTIMIZATION), so adapter_config.json holds 14 "
            "full paths, not 'all-linear' and not suffixes (order = Python set order)."
        ),
    )


GEMMA_SET = ["model.layers.1.mlp.up_proj", "model.layers.1.self_attn.q_proj"]


def expect_gemma(mods):
    assert sorted(mods) == GEMMA_SET, sorted(mods)


def case_gemma_regex_layers():
    return simple_case(
        "gemma-regex-layers",
        "gemma-f32",
        dict(
            r=4,
            lora_alpha=8,
            target_modules=r".*\.layers\.1\.(self_attn|mlp)\.(q_proj|k_proj|up_proj)",
            exclude_modules=["k_proj"],
        ),
        seed=3,
        expect=expect_gemma,
        notes=(
            "target_modules is a regex STRING, matched with re.fullmatch against the full module name "
            "(e.g. 'model.layers.1.self_attn.q_proj'). peft 0.21 REJECTS a regex string combined with "
            "layers_to_transform ('`layers_to_transform` cannot be used when `target_modules` is a str.'), so the layer "
            "restriction is written into the regex instead. exclude_modules (list => exact name or '.'-suffix) is "
            "checked before target_modules: k_proj matches the regex but is excluded. Adapted: layer 1 q_proj, up_proj. "
            "Same adapted set, seed and weights as gemma-list-layers (goldens must be identical). gemma-f32 is loaded "
            "with hidden_act='gelu_pytorch_tanh' (its hidden_activation)."
        ),
    )


def case_gemma_list_layers():
    return simple_case(
        "gemma-list-layers",
        "gemma-f32",
        dict(
            r=4,
            lora_alpha=8,
            target_modules=["q_proj", "k_proj", "up_proj"],
            layers_to_transform=[1],
            layers_pattern="layers",
            exclude_modules=r".*\.k_proj",
        ),
        seed=3,
        expect=expect_gemma,
        notes=(
            "The list form of gemma-regex-layers: list target_modules (exact name or '.'-suffix), layers_to_transform "
            "[1] with layers_pattern 'layers' (index = first match of (?:^|.*?\\.)layers\\.(\\d+)\\.), and "
            "exclude_modules as a regex STRING (re.fullmatch). Same adapted modules, seed and weights as "
            "gemma-regex-layers, so both goldens are identical."
        ),
    )


def case_gemma2_dora():
    return simple_case(
        "gemma2-dora",
        "gemma2-f32-sharded",
        dict(
            r=4,
            lora_alpha=4,
            use_dora=True,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        ),
        seed=4,
        dora_jitter=0.05,
        notes=(
            "DoRA: lora_magnitude_vector m [out] (key '<module>.lora_magnitude_vector', no '.weight') is initialised "
            "by peft to the row norms ||W||_2 (B = 0 at init) and then multiplied by 1 + N(0, 0.05^2) here; A/B are "
            "randomised AFTER m was computed, so m != ||W + s B A||. Forward: y = m/||W + s B A||_row (norm detached) "
            "* (W + s B A) x. merged.* = m/||W+sBA|| [:,None] * (W + s B A)."
        ),
    )


# ----------------------------------------------------------------------------------------------------------------
# PiSSA

PISSA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def case_llama_pissa():
    case = "llama-pissa"
    base_name = "llama-f32"
    case_dir = os.path.join(OUT, case)
    fresh_dir(case_dir)
    inputs = base_inputs(base_name)
    base = load_base(base_name)
    base_logits = logits_of(base, inputs)
    ref_logits = safetensors.torch.load_file(os.path.join(base_dir(base_name), "golden.safetensors"))["logits"]
    original = {n: m.weight.detach().clone() for n, m in base.named_modules() if isinstance(m, torch.nn.Linear)}
    cfg_kwargs = dict(r=4, lora_alpha=8, init_lora_weights="pissa", target_modules=PISSA_TARGETS)
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", **cfg_kwargs)).eval()
    mods = module_info(model)
    golden = dict(inputs)
    golden["logits_init"] = logits_of(model, inputs)
    d_init = maxabs(golden["logits_init"], base_logits)
    say(case, f"PiSSA init: max |logits_init - base| = {d_init:.2e} (vs base fixture golden {maxabs(golden['logits_init'], ref_logits):.2e})")
    assert d_init <= TOL_MERGE, d_init
    identity = 0.0
    for p, mod in lora_layers(model):
        golden[f"base.{p}.weight"] = original[p]
        golden[f"residual.{p}.weight"] = mod.get_base_layer().weight.detach().clone()
        golden[f"A0.{p}"] = mod.lora_A["default"].weight.detach().clone()
        golden[f"B0.{p}"] = mod.lora_B["default"].weight.detach().clone()
        s = mod.scaling["default"]
        identity = max(identity, maxabs(golden[f"residual.{p}.weight"] + s * golden[f"B0.{p}"] @ golden[f"A0.{p}"], original[p]))
    say(case, f"max |W_res + s B0 A0 - W| = {identity:.2e}")
    # the PiSSA workflow: mark the config as plain LoRA (init true) BEFORE saving, or loading would re-run the SVD
    model.peft_config["default"].init_lora_weights = True
    pissa_init = os.path.join(case_dir, "pissa_init")
    model.save_pretrained(pissa_init)
    # "train": perturb A and B
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for _, mod in lora_layers(model):
            for w in (mod.lora_A["default"].weight, mod.lora_B["default"].weight):
                w.add_(0.2 * w.std() * torch.randn(w.shape, generator=gen, dtype=torch.float32))
    logits = logits_of(model, inputs)
    merged = merged_model(model)
    logits_merged = logits_of(merged, inputs)
    effect_and_merge(case, logits, base_logits, logits_merged)
    golden["logits"] = logits
    golden["logits_merged"] = logits_merged
    for p in mods:
        golden[f"merged.{p}.weight"] = merged.get_submodule(p).weight
    adapter_dir = os.path.join(case_dir, "adapter")
    model.save_pretrained(adapter_dir)
    converted_dir = os.path.join(case_dir, "converted")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.save_pretrained(converted_dir, path_initial_model_for_weight_conversion=pissa_init)
    for w in caught:
        say(case, f"conversion warning: {w.message}")
    residual_dir = os.path.join(case_dir, "residual_model")
    residual = copy.deepcopy(model).unload()
    residual.save_pretrained(residual_dir)
    # checks: residual + adapter/ == logits; original base + converted/ == logits; pissa_init on residual == base
    reload_check(case, adapter_dir, residual_dir, inputs, logits, "adapter/ on residual_model/")
    golden["logits_converted"] = reload_check(case, converted_dir, base_name, inputs, logits, "converted/ on original base")
    reload_check(case, pissa_init, residual_dir, inputs, base_logits, "pissa_init/ on residual_model/")
    conv_keys = adapter_keys(converted_dir)
    conv = safetensors.torch.load_file(os.path.join(converted_dir, "adapter_model.safetensors"))
    trained = safetensors.torch.load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    for k in trained:  # A' = [A; A0], B' = [B, -B0]
        p = k.removeprefix("base_model.model.").rsplit(".lora_", 1)[0]
        if ".lora_A." in k:
            assert torch.equal(conv[k], torch.cat([trained[k], golden[f"A0.{p}"]], 0)), k
        else:
            assert torch.equal(conv[k], torch.cat([trained[k], -golden[f"B0.{p}"]], 1)), k
    info = {
        "case": case,
        "base": base_name,
        "base_dir": base_dir(base_name),
        "lora_config_args": {"task_type": "CAUSAL_LM", **cfg_kwargs},
        "adapter_config_saved": {
            "pissa_init": config_as_saved(pissa_init),
            "adapter": config_as_saved(adapter_dir),
            "converted": config_as_saved(converted_dir),
        },
        "adapter_tensors": {"adapter": adapter_keys(adapter_dir), "converted": conv_keys},
        "adapted_modules": mods,
        "residual_model_files": sorted(os.listdir(residual_dir)),
        "max_abs_residual_plus_sB0A0_minus_W": identity,
        "max_abs_logits_init_vs_base": d_init,
        "seed": 5,
        "notes": (
            "PiSSA (exact SVD, torch.linalg.svd in fp32): V,S,Uh = svd(W); A0 = diag(sqrt(S[:r]/s)) Uh[:r]; "
            "B0 = V[:, :r] diag(sqrt(S[:r]/s)); W_res = W - s B0 A0; s = 8/4 = 2. Workflow: get_peft_model(pissa) -> "
            "set peft_config.init_lora_weights = True -> save pissa_init/ -> 'train' (A += 0.2*std(A)*N(0,1), "
            "B likewise, seed 5) -> save adapter/ (the trained adapter, meant for residual_model/) -> "
            "save_pretrained(converted/, path_initial_model_for_weight_conversion=pissa_init/) (A' = [A; A0] on dim 0, "
            "B' = [B, -B0] on dim 1, r 4->8, lora_alpha 8->16, init true; for the ORIGINAL base; note peft also "
            "re-writes pissa_init/adapter_config.json during the conversion) -> residual_model/ = unload() + "
            "transformers save_pretrained (v5 config: rope_scaling is re-saved as rope_parameters). golden: base.* = "
            "original W, residual.* = W_res, A0.*/B0.* = initial adapter, logits_init = residual + initial adapter "
            "(== base logits), logits = residual + trained adapter (unmerged), logits_merged = merge_and_unload of "
            "that, merged.* = W_res + s B A, logits_converted = original base + converted/ loaded by peft."
        ),
    }
    gpath = finish_case(case, case_dir, golden, info)
    run_checker(case, adapter_dir, residual_dir, gpath)
    run_checker(case, converted_dir, base_dir(base_name), gpath, key="logits_converted")
    return case_dir


def case_llama_pissa_niter():
    case = "llama-pissa-niter"
    base_name = "llama-f32"
    case_dir = os.path.join(OUT, case)
    fresh_dir(case_dir)
    base = load_base(base_name)
    inputs = base_inputs(base_name)
    original = {n: m.weight.detach().clone() for n, m in base.named_modules() if isinstance(m, torch.nn.Linear)}
    cfg_kwargs = dict(r=4, lora_alpha=8, init_lora_weights="pissa_niter_4", target_modules=PISSA_TARGETS)
    torch.manual_seed(6)  # svd_lowrank draws from the global RNG
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", **cfg_kwargs)).eval()
    golden = dict(inputs)
    quality = {}
    identity = 0.0
    for p, mod in lora_layers(model):
        W = original[p]
        Wres = mod.get_base_layer().weight.detach().clone()
        A0 = mod.lora_A["default"].weight.detach().clone()
        B0 = mod.lora_B["default"].weight.detach().clone()
        s = float(mod.scaling["default"])
        golden[f"base.{p}.weight"], golden[f"residual.{p}.weight"], golden[f"A0.{p}"], golden[f"B0.{p}"] = W, Wres, A0, B0
        identity = max(identity, maxabs(Wres + s * B0 @ A0, W))
        S = torch.linalg.svdvals(W.double())
        r = A0.shape[0]
        quality[p] = {
            "residual_fro": float(torch.linalg.norm((W - s * B0 @ A0).double())),
            "optimal_rank_r_residual_fro": float(S[r:].pow(2).sum().sqrt()),
            "top_r_singular_values": [float(x) for x in S[:r]],
        }
    say(case, f"max |W_res + s B0 A0 - W| = {identity:.2e}; worst residual/optimal = "
        f"{max(q['residual_fro'] / q['optimal_rank_r_residual_fro'] for q in quality.values()):.4f}")
    assert identity <= 1e-5, identity
    summary.setdefault(case, {})["max_abs_residual_plus_sB0A0_minus_W"] = identity
    info = {
        "case": case,
        "base": base_name,
        "base_dir": base_dir(base_name),
        "lora_config_args": {"task_type": "CAUSAL_LM", **cfg_kwargs},
        "adapted_modules": module_info(model),
        "subspace_quality": quality,
        "seed": 6,
        "notes": (
            "PiSSA with torch.svd_lowrank(W, q=r, niter=4) (randomised; torch.manual_seed(6) before get_peft_model): "
            "V, S, U = svd_lowrank(W, r, niter=4); A0 = diag(sqrt(S/s)) U^T; B0 = V diag(sqrt(S/s)); W_res = W - s B0 A0. "
            "Only the identity W_res + s B0 A0 == W and the quality of the principal subspace are meant to be "
            "checked (subspace_quality: ||W - s B0 A0||_F vs the optimal rank-r residual sqrt(sum S[r:]^2)); "
            "no adapter is saved for this case."
        ),
    }
    finish_case(case, case_dir, golden, info)
    return case_dir


# ----------------------------------------------------------------------------------------------------------------
# multi-adapter


def case_llama_multi():
    case = "llama-multi"
    base_name = "llama-f32"
    case_dir = os.path.join(OUT, case)
    fresh_dir(case_dir)
    inputs = base_inputs(base_name)
    base = load_base(base_name)
    base_logits = logits_of(base, inputs)
    cfg_a = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    cfg_b = dict(r=2, lora_alpha=2, target_modules=["q_proj", "o_proj", "down_proj"])
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", **cfg_a)).eval()
    randomize(model, "default", torch.Generator().manual_seed(7))
    model.add_adapter("second", LoraConfig(task_type="CAUSAL_LM", **cfg_b))
    randomize(model, "second", torch.Generator().manual_seed(8))
    model.eval()
    assert model.active_adapters == ["default"], model.active_adapters
    golden = dict(inputs)
    golden["logits"] = logits_of(model, inputs)
    model.set_adapter("second")
    golden["logits_second"] = logits_of(model, inputs)
    model.base_model.set_adapter(["default", "second"])
    golden["logits_both"] = logits_of(model, inputs)
    with model.disable_adapter():
        golden["logits_disabled"] = logits_of(model, inputs)
    model.set_adapter("default")
    assert maxabs(golden["logits"], logits_of(model, inputs)) == 0.0
    d_dis = maxabs(golden["logits_disabled"], base_logits)
    say(case, f"disable_adapter(): max |logits - base| = {d_dis:.1e}")
    assert d_dis == 0.0, d_dis
    mods = {"default": module_info(model, "default"), "second": module_info(model, "second")}
    m_def = merged_model(model, ["default"])
    golden["logits_merged"] = logits_of(m_def, inputs)
    for p in mods["default"]:
        golden[f"merged.{p}.weight"] = m_def.get_submodule(p).weight
    m_sec = merged_model(model, ["second"])
    golden["logits_merged_second"] = logits_of(m_sec, inputs)
    m_both = merged_model(model, ["default", "second"])
    golden["logits_merged_both"] = logits_of(m_both, inputs)
    for p in sorted(set(mods["default"]) | set(mods["second"])):
        golden[f"merged_both.{p}.weight"] = m_both.get_submodule(p).weight
    effect_and_merge(case, golden["logits"], base_logits, golden["logits_merged"])
    for a, b, lbl in [("logits_second", "logits_merged_second", "second"), ("logits_both", "logits_merged_both", "both")]:
        e, m = maxabs(golden[a], base_logits), maxabs(golden[a], golden[b])
        say(case, f"{lbl}: max |logits - base| = {e:.4e}   max |unmerged - merged| = {m:.2e}")
        assert e > MIN_EFFECT and m <= TOL_MERGE
        summary[case][f"max_abs_vs_base_{lbl}"] = e
        summary[case][f"max_abs_unmerged_vs_merged_{lbl}"] = m
    model.save_pretrained(case_dir)
    second_dir = os.path.join(case_dir, "second")
    reload_check(case, case_dir, base_name, inputs, golden["logits"], "default (root)")
    reload_check(case, second_dir, base_name, inputs, golden["logits_second"], "second/", adapter_name="second")
    # both through peft's own multi-adapter loading
    pm = PeftModel.from_pretrained(load_base(base_name), case_dir).eval()
    pm.load_adapter(case_dir, adapter_name="second", subfolder="second")
    pm.base_model.set_adapter(["default", "second"])
    d = maxabs(logits_of(pm, inputs), golden["logits_both"])
    say(case, f"reload both (from_pretrained + load_adapter(subfolder='second')): max |dlogits| {d:.2e}")
    assert d <= TOL_RELOAD
    info = {
        "case": case,
        "base": base_name,
        "base_dir": base_dir(base_name),
        "lora_config_args": {"default": {"task_type": "CAUSAL_LM", **cfg_a}, "second": {"task_type": "CAUSAL_LM", **cfg_b}},
        "adapter_config_saved": {"default": config_as_saved(case_dir), "second": config_as_saved(second_dir)},
        "adapter_tensors": {"default": adapter_keys(case_dir), "second": adapter_keys(second_dir)},
        "adapted_modules": mods,
        "seed": {"default": 7, "second": 8},
        "notes": (
            "Two adapters on one model, saved by one save_pretrained call: 'default' in the root, every other adapter "
            "in <root>/<name>/ (own adapter_config.json + adapter_model.safetensors; README.md only in the root). "
            "Tensor names never contain the adapter name. q_proj carries both adapters. logits = 'default' active "
            "(peft's state after add_adapter: the first adapter stays active); logits_second = set_adapter('second'); "
            "logits_both = base_model.set_adapter(['default','second']) (deltas summed); logits_disabled = inside "
            "disable_adapter() (== base logits exactly); logits_merged / merged.* = merge_and_unload(adapter_names="
            "['default']); logits_merged_second; logits_merged_both / merged_both.* = both merged."
        ),
    }
    gpath = finish_case(case, case_dir, golden, info)
    run_checker(case, case_dir, base_dir(base_name), gpath)
    run_checker(case, second_dir, base_dir(base_name), gpath, key="logits_second")
    return case_dir


# ----------------------------------------------------------------------------------------------------------------
# probes: what peft accepts when loading, and its error / warning texts


def _clean(msg):
    return str(msg).replace(ROOT + "/", "").replace(PROBE_DIR + "/", "")


PROBE_DIR = "/tmp/balora_peft_probe"


def probe_load(name, cfg, tensors_from, base_name, ref_logits, transform=None, dtype=None):
    """Write `cfg` + (transformed) tensors, try PeftModel.from_pretrained; record outcome."""
    d = os.path.join(PROBE_DIR, name)
    fresh_dir(d)
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    t = safetensors.torch.load_file(os.path.join(tensors_from, "adapter_model.safetensors"))
    if transform:
        t = transform(t)
    if dtype is not None:
        t = {k: v.to(dtype) for k, v in t.items()}
    safetensors.torch.save_file(t, os.path.join(d, "adapter_model.safetensors"), metadata={"format": "pt"})
    res = {"config": cfg}
    inputs = base_inputs(base_name)
    base = load_base(base_name)
    try:
        model, problems = peft_check.load_adapter_strict(base, d)
        _, kp = peft_check.key_check(model, d)
        res["loaded"] = True
        res["warnings"] = [_clean(p) for p in problems]
        res["key_check"] = [_clean(p) for p in kp]
        got = logits_of(model, inputs)
        res["max_abs_vs_reference_logits"] = maxabs(got, ref_logits)
        res["matches_reference"] = res["max_abs_vs_reference_logits"] <= TOL_RELOAD
        res["modules"] = {p: [m["r"], m["scaling"]] for p, m in module_info(model).items()}
        res["peft_model_class"] = type(model).__name__
    except Exception as e:
        res["loaded"] = False
        res["error"] = f"{type(e).__name__}: {_clean(e)}"
    return res


def probe_inject(name, base_name, cfg_kwargs):
    """get_peft_model with a config; record the error or the matched modules and warnings."""
    base = load_base(base_name)
    res = {"lora_config_args": {k: (sorted(v) if isinstance(v, set) else v) for k, v in cfg_kwargs.items()}}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cfg = LoraConfig(**cfg_kwargs)
            model = get_peft_model(base, cfg)
        res["ok"] = True
        res["warnings"] = [_clean(w.message) for w in caught]
        res["modules"] = {p: [m["r"], m["scaling"]] for p, m in module_info(model).items()}
        tm = model.peft_config["default"].target_modules
        res["target_modules_after_injection"] = sorted(tm) if isinstance(tm, (set, list)) else tm
    except Exception as e:
        res["ok"] = False
        res["error"] = f"{type(e).__name__}: {_clean(e)}"
    return res


def run_probes():
    case = "probes"
    a_dir = os.path.join(OUT, "llama-lora")
    d_dir = os.path.join(OUT, "gemma2-dora")
    ref = safetensors.torch.load_file(os.path.join(a_dir, "golden.safetensors"))["logits"]
    ref_d = safetensors.torch.load_file(os.path.join(d_dir, "golden.safetensors"))["logits"]
    full = config_as_saved(a_dir)
    conservative_keys = [
        "alpha_pattern", "base_model_name_or_path", "bias", "fan_in_fan_out", "inference_mode", "init_lora_weights",
        "layers_pattern", "layers_to_transform", "lora_alpha", "lora_dropout", "modules_to_save", "peft_type", "r",
        "rank_pattern", "revision", "target_modules", "task_type", "use_dora", "use_rslora",
    ]
    P = {}
    L = {}
    L["only_peft_type"] = probe_load("only_peft_type", {"peft_type": "LORA"}, a_dir, "llama-f32", ref)
    L["peft_type_r"] = probe_load("peft_type_r", {"peft_type": "LORA", "r": 4}, a_dir, "llama-f32", ref)
    L["peft_type_r_alpha4"] = probe_load("peft_type_r_alpha4", {"peft_type": "LORA", "r": 4, "lora_alpha": 4}, a_dir, "llama-f32", ref)
    L["minimal"] = probe_load(
        "minimal", {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}, a_dir, "llama-f32", ref
    )
    L["minimal_causal_lm"] = probe_load(
        "minimal_causal_lm",
        {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        a_dir, "llama-f32", ref,
    )
    L["conservative_key_set"] = probe_load(
        "conservative_key_set", {k: full[k] for k in conservative_keys}, a_dir, "llama-f32", ref
    )
    L["unknown_key"] = probe_load("unknown_key", {**full, "balora_extra": 1}, a_dir, "llama-f32", ref)
    L["no_peft_type"] = probe_load("no_peft_type", {k: v for k, v in full.items() if k != "peft_type"}, a_dir, "llama-f32", ref)
    L["wrong_r"] = probe_load("wrong_r", {**full, "r": 8}, a_dir, "llama-f32", ref)
    L["wrong_alpha"] = probe_load("wrong_alpha", {**full, "lora_alpha": 16}, a_dir, "llama-f32", ref)
    L["regex_target"] = probe_load("regex_target", {**full, "target_modules": r".*\.(q_proj|v_proj)"}, a_dir, "llama-f32", ref)
    L["config_fewer_targets_than_file"] = probe_load(
        "config_fewer_targets_than_file", {**full, "target_modules": ["q_proj"]}, a_dir, "llama-f32", ref
    )
    L["config_more_targets_than_file"] = probe_load(
        "config_more_targets_than_file", {**full, "target_modules": ["q_proj", "v_proj", "k_proj"]}, a_dir, "llama-f32", ref
    )
    L["init_pissa_in_exported_config"] = probe_load(
        "init_pissa_in_exported_config", {**full, "init_lora_weights": "pissa"}, a_dir, "llama-f32", ref
    )
    L["tensors_bf16"] = probe_load("tensors_bf16", full, a_dir, "llama-f32", ref, dtype=torch.bfloat16)
    L["tensors_f16"] = probe_load("tensors_f16", full, a_dir, "llama-f32", ref, dtype=torch.float16)
    L["keys_with_adapter_name"] = probe_load(
        "keys_with_adapter_name", full, a_dir, "llama-f32", ref,
        transform=lambda t: {k.replace(".lora_A.", ".lora_A.default.").replace(".lora_B.", ".lora_B.default."): v for k, v in t.items()},
    )
    L["keys_without_base_model_model_prefix"] = probe_load(
        "keys_without_base_model_model_prefix", full, a_dir, "llama-f32", ref,
        transform=lambda t: {k.removeprefix("base_model.model."): v for k, v in t.items()},
    )
    L["keys_with_extra_tensor"] = probe_load(
        "keys_with_extra_tensor", full, a_dir, "llama-f32", ref,
        transform=lambda t: {**t, "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight": torch.zeros(4, 32)},
    )
    dcfg = config_as_saved(d_dir)
    L["dora_file_use_dora_false"] = probe_load(
        "dora_file_use_dora_false", {**dcfg, "use_dora": False}, d_dir, "gemma2-f32-sharded", ref_d
    )
    L["dora_file_as_saved"] = probe_load("dora_file_as_saved", dcfg, d_dir, "gemma2-f32-sharded", ref_d)
    L["dora_magnitude_with_weight_suffix"] = probe_load(
        "dora_magnitude_with_weight_suffix", dcfg, d_dir, "gemma2-f32-sharded", ref_d,
        transform=lambda t: {(k + ".weight" if k.endswith("lora_magnitude_vector") else k): v for k, v in t.items()},
    )
    P["load"] = L

    I = {}
    I["no_match_list"] = probe_inject("no_match_list", "llama-f32", dict(target_modules=["qkv_proj"]))
    I["no_match_list_layers"] = probe_inject(
        "no_match_list_layers", "llama-f32", dict(target_modules=["q_proj"], layers_to_transform=[5], layers_pattern="layers")
    )
    I["no_match_regex"] = probe_inject("no_match_regex", "llama-f32", dict(target_modules=r"q_proj"))
    I["regex_is_fullmatch"] = probe_inject("regex_is_fullmatch", "llama-f32", dict(target_modules=r".*q_proj"))
    I["all_excluded"] = probe_inject("all_excluded", "llama-f32", dict(target_modules=["q_proj"], exclude_modules=["q_proj"]))
    I["exclude_unused"] = probe_inject("exclude_unused", "llama-f32", dict(target_modules=["q_proj"], exclude_modules=["nope"]))
    I["regex_plus_layers_to_transform"] = probe_inject(
        "regex_plus_layers_to_transform", "gemma-f32", dict(target_modules=r".*\.(q_proj|k_proj|up_proj)$", layers_to_transform=[1])
    )
    I["layers_pattern_without_layers_to_transform"] = probe_inject(
        "layers_pattern_without_layers_to_transform", "llama-f32", dict(target_modules=["q_proj"], layers_pattern="layers")
    )
    I["layers_to_transform_int"] = probe_inject(
        "layers_to_transform_int", "llama-f32", dict(target_modules=["q_proj"], layers_to_transform=0)
    )
    I["layers_to_transform_no_pattern"] = probe_inject(
        "layers_to_transform_no_pattern", "llama-f32", dict(target_modules=["q_proj", "down_proj"], layers_to_transform=[1])
    )
    I["full_name_target"] = probe_inject(
        "full_name_target", "llama-f32", dict(target_modules=["model.layers.0.self_attn.q_proj", "self_attn.v_proj"])
    )
    I["partial_segment_does_not_match"] = probe_inject("partial_segment_does_not_match", "llama-f32", dict(target_modules=["proj"]))
    I["target_none_uses_arch_default"] = probe_inject("target_none_uses_arch_default", "llama-f32", dict(r=2))
    I["all_linear"] = probe_inject("all_linear", "llama-f32", dict(target_modules="all-linear"))
    I["all_linear_uppercase"] = probe_inject("all_linear_uppercase", "llama-f32", dict(target_modules="ALL-LINEAR"))
    I["rank_pattern_unmatched"] = probe_inject(
        "rank_pattern_unmatched", "llama-f32", dict(target_modules=["q_proj"], rank_pattern={"v_proj": 2})
    )
    I["rank_pattern_partial_segment"] = probe_inject(
        "rank_pattern_partial_segment", "llama-f32", dict(target_modules=["q_proj"], rank_pattern={"proj": 2, "_proj": 3})
    )
    I["rank_pattern_regex"] = probe_inject(
        "rank_pattern_regex", "llama-f32", dict(target_modules=["q_proj", "v_proj"], rank_pattern={r"layers\.[1]\.self_attn\.(q|v)_proj": 2})
    )
    I["rank_pattern_first_match_wins"] = probe_inject(
        "rank_pattern_first_match_wins", "llama-f32",
        dict(target_modules=["q_proj"], rank_pattern={"q_proj": 2, "layers.0.self_attn.q_proj": 6}),
    )
    I["dora_plus_lora_bias"] = probe_inject(
        "dora_plus_lora_bias", "llama-f32", dict(target_modules=["q_proj"], use_dora=True, lora_bias=True)
    )
    I["full_name_bypasses_layers_to_transform"] = probe_inject(
        "full_name_bypasses_layers_to_transform", "llama-f32",
        dict(target_modules=["model.layers.0.self_attn.q_proj", "v_proj"], layers_to_transform=[1]),
    )
    P["inject"] = I

    # "all-linear" on a model with >= 20 linear layers: the full names are condensed to a minimal suffix set
    cfg3 = transformers.AutoConfig.from_pretrained(base_dir("llama-f32"))
    cfg3.num_hidden_layers = 3
    torch.manual_seed(0)
    m3 = transformers.AutoModelForCausalLM.from_config(cfg3)
    m3 = get_peft_model(m3, LoraConfig(task_type="CAUSAL_LM", target_modules="all-linear"))
    d = os.path.join(PROBE_DIR, "all_linear_3_layers")
    fresh_dir(d)
    m3.save_pretrained(d)
    P["all_linear_21_modules_saved_target_modules"] = sorted(config_as_saved(d)["target_modules"])

    # rank_pattern order after a save/load round trip: json sort_keys reorders the dict, get_pattern_key takes the
    # first match in dict order -> the saved adapter may not load.
    rt = {}
    base = load_base("llama-f32")
    m = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj"],
                                        rank_pattern={"q_proj": 2, "layers.0.self_attn.q_proj": 6}))
    d = os.path.join(PROBE_DIR, "rank_pattern_roundtrip")
    fresh_dir(d)
    m.save_pretrained(d)
    rt["modules_when_created"] = {p: x["r"] for p, x in module_info(m).items()}
    rt["rank_pattern_in_saved_json_order"] = list(config_as_saved(d)["rank_pattern"].keys())
    try:
        mm, probs = peft_check.load_adapter_strict(load_base("llama-f32"), d)
        rt["loaded"] = True
        rt["modules_after_reload"] = {p: x["r"] for p, x in module_info(mm).items()}
        rt["warnings"] = [_clean(p) for p in probs]
    except Exception as e:
        rt["loaded"] = False
        rt["error"] = f"{type(e).__name__}: {_clean(e)[:600]}"
    P["rank_pattern_order_roundtrip"] = rt

    # what task_type=None writes instead of task_type
    base = load_base("llama-f32")
    m = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj"]))
    d = os.path.join(PROBE_DIR, "no_task_type")
    fresh_dir(d)
    m.save_pretrained(d)
    c = config_as_saved(d)
    P["task_type_none_saved"] = {"task_type": c["task_type"], "auto_mapping": c["auto_mapping"], "class": type(m).__name__}

    # the lone-file shape of a saved adapter: raw header bytes of llama-lora
    raw = open(os.path.join(a_dir, "adapter_model.safetensors"), "rb").read()
    n = int.from_bytes(raw[:8], "little")
    P["llama_lora_safetensors_header"] = {"header_len": n, "header": raw[8 : 8 + n].decode()}

    with open(os.path.join(OUT, "probes.json"), "w") as f:
        f.write(json.dumps(P, indent=2, sort_keys=True) + "\n")
    say(case, f"wrote {os.path.relpath(os.path.join(OUT, 'probes.json'), ROOT)}")
    for k, v in L.items():
        say(case, f"load {k}: " + ("OK" if v.get("loaded") else "FAIL") + (
            f" matches={v.get('matches_reference')} warn={v.get('warnings')} keys={v.get('key_check')}" if v.get("loaded") else f" {v.get('error')[:300]}"))
    for k, v in I.items():
        say(case, f"inject {k}: " + (f"OK {sorted(v['modules'])[:3]}... warn={v['warnings']}" if v["ok"] else v["error"][:300]))
    say(case, f"rank_pattern roundtrip: {rt}")
    shutil.rmtree(PROBE_DIR, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------

CASES = {
    "llama-lora": case_llama_lora,
    "mistral-rslora-patterns": case_mistral_rslora_patterns,
    "gemma-regex-layers": case_gemma_regex_layers,
    "gemma-list-layers": case_gemma_list_layers,
    "gemma2-dora": case_gemma2_dora,
    "llama-pissa": case_llama_pissa,
    "llama-pissa-niter": case_llama_pissa_niter,
    "llama-multi": case_llama_multi,
}


def main():
    print(f"peft {peft.__version__}, transformers {transformers.__version__}, torch {torch.__version__}, "
          f"safetensors {safetensors.__version__}")
    names = sys.argv[1:] or [*CASES, "probes"]
    os.makedirs(OUT, exist_ok=True)
    for n in names:
        if n == "probes":
            run_probes()
        else:
            CASES[n]()
    if "gemma-regex-layers" in names and "gemma-list-layers" in names:
        g1 = safetensors.torch.load_file(os.path.join(OUT, "gemma-regex-layers", "golden.safetensors"))
        g2 = safetensors.torch.load_file(os.path.join(OUT, "gemma-list-layers", "golden.safetensors"))
        assert g1.keys() == g2.keys() and all(torch.equal(g1[k], g2[k]) for k in g1), "gemma goldens differ"
        print("[gemma] regex-string and list+layers_to_transform configs give identical goldens")
    print("\nsummary (max abs):")
    for c, s in summary.items():
        print(f"  {c:26s} " + "  ".join(f"{k}={v:.3e}" for k, v in s.items()))
    total = 0
    for dp, _, fs in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fs)
    print(f"fixtures total: {total} bytes")


if __name__ == "__main__":
    main()
