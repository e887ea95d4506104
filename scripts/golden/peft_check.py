# Validates a LoRA adapter directory written by balora against REAL peft.
#
# Run: /tmp/hfenv/bin/python scripts/golden/peft_check.py ADAPTER_DIR BASE_MODEL_DIR INPUT.safetensors LOGITS.safetensors
#        [--key logits] [--tol 1e-4] [--adapter-name default]
#
#   ADAPTER_DIR        adapter_config.json + adapter_model.safetensors (as balora writes them)
#   BASE_MODEL_DIR     HF model directory (config.json + safetensors), e.g. packages/models/test/fixtures/llama-f32
#   INPUT              safetensors with `input_ids` and `attention_mask` (I64 [B, T]); e.g. the base golden.safetensors
#   LOGITS             safetensors with balora's logits F32 [B, T, V] under --key (default `logits`; if the file holds
#                      a single tensor its name does not matter)
#
# What it checks (any failure => exit status 1, JSON summary on stdout either way):
#   - adapter_config.json parses, peft_type is LORA, and peft builds a LoraConfig from it without any warning
#     (an unknown key, for instance, gives "Unexpected keyword arguments ..." in peft >= 0.13)
#   - PeftModel.from_pretrained emits no warning at all (missing adapter keys, unmatched rank/alpha patterns,
#     exclude_modules that excluded nothing, ...) and no WARNING+ log record from peft/transformers
#   - the tensor names in adapter_model.safetensors are EXACTLY the names peft itself would save for the model it
#     built from the config (peft silently ignores unexpected keys, so this is checked here), with equal shapes
#   - the adapter actually changes the output (reported; fails only if it is exactly a no-op and --allow-noop is off)
#   - peft's logits (eval mode, adapter unmerged) match balora's within --tol (max abs), and peft's merged logits
#     (merge_and_unload) match too.
# Gemma (v1) fixtures carry `hidden_act: gelu` next to `hidden_activation: gelu_pytorch_tanh`; transformers 5 reads
# `hidden_act` (exact GELU) while balora follows the reference (tanh GELU), so the base is loaded with
# hidden_act=<hidden_activation> in that case (same rule as scripts/golden/crosscheck_transformers.py).
import argparse
import json
import logging
import os
import sys
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import safetensors  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402


# init_lora_weights values whose init modifies the base layer (or needs data/quantizer) when the adapter is created
BASE_MUTATING_INITS = ("pissa", "olora", "corda", "loftq", "lora_ga", "eva")


def base_overrides(base_dir):
    """Config overrides so transformers computes what balora computes (see module docstring)."""
    cfg = json.load(open(os.path.join(base_dir, "config.json")))
    if cfg.get("model_type") == "gemma" and "hidden_activation" in cfg and cfg.get("hidden_act") != cfg["hidden_activation"]:
        return {"hidden_act": cfg["hidden_activation"]}
    return {}


def load_base(base_dir):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    m = AutoModelForCausalLM.from_pretrained(
        base_dir, attn_implementation="eager", dtype=torch.float32, **base_overrides(base_dir)
    )
    return m.eval()


@torch.no_grad()
def logits_of(model, inputs):
    model.eval()
    return model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits.float()


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(f"{record.name}: {record.getMessage()}")


def load_adapter_strict(base_model, adapter_dir, adapter_name="default"):
    """PeftModel.from_pretrained with every warning / WARNING log recorded. Returns (model, problems list)."""
    from peft import PeftModel

    problems = []
    cap = _Capture()
    loggers = [logging.getLogger(n) for n in ("peft", "transformers")]
    for lg in loggers:
        lg.addHandler(cap)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = PeftModel.from_pretrained(base_model, adapter_dir, adapter_name=adapter_name)
    finally:
        for lg in loggers:
            lg.removeHandler(cap)
    for w in caught:
        problems.append(f"warning ({w.category.__name__}): {w.message}")
    for r in cap.records:
        problems.append(f"log: {r}")
    return model.eval(), problems


def key_check(model, adapter_dir, adapter_name="default"):
    """Names/shapes in adapter_model.safetensors vs what peft saves for the model it built. Returns (info, problems)."""
    from peft import get_peft_model_state_dict

    path = os.path.join(adapter_dir, "adapter_model.safetensors")
    problems = []
    with safetensors.safe_open(path, "pt") as fh:
        meta = fh.metadata()
        file_keys = {k: (list(fh.get_slice(k).get_shape()), fh.get_slice(k).get_dtype()) for k in fh.keys()}
    want = {k: list(v.shape) for k, v in get_peft_model_state_dict(model, adapter_name=adapter_name).items()}
    missing = sorted(set(want) - set(file_keys))
    unexpected = sorted(set(file_keys) - set(want))
    if missing:
        problems.append(f"missing keys (peft expects them, file lacks them): {missing}")
    if unexpected:
        problems.append(f"unexpected keys (in file, peft would IGNORE them silently): {unexpected}")
    for k in sorted(set(want) & set(file_keys)):
        if want[k] != file_keys[k][0]:
            problems.append(f"shape of {k}: file {file_keys[k][0]} != peft {want[k]}")
    if meta is None or meta.get("format") != "pt":
        problems.append(f"__metadata__ should contain format=pt, got {meta}")
    dtypes = sorted({d for _, d in file_keys.values()})
    return {"n_tensors": len(file_keys), "dtypes": dtypes, "metadata": meta}, problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("adapter_dir")
    ap.add_argument("base_dir")
    ap.add_argument("inputs")
    ap.add_argument("logits")
    ap.add_argument("--key", default="logits", help="tensor name of balora's logits in LOGITS (default: logits)")
    ap.add_argument("--tol", type=float, default=1e-4, help="max abs difference allowed (default 1e-4)")
    ap.add_argument("--adapter-name", default="default")
    ap.add_argument("--allow-noop", action="store_true", help="do not fail when the adapter does not change logits")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    import peft
    import transformers

    summary = {
        "adapter_dir": args.adapter_dir,
        "base_dir": args.base_dir,
        "peft": peft.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "base_overrides": base_overrides(args.base_dir),
        "tol": args.tol,
        "problems": [],
        "notes": [],
    }
    problems = summary["problems"]
    try:
        cfg_json = json.load(open(os.path.join(args.adapter_dir, "adapter_config.json")))
        summary["config"] = {
            k: cfg_json.get(k)
            for k in ("peft_type", "r", "lora_alpha", "use_rslora", "use_dora", "target_modules", "rank_pattern",
                      "alpha_pattern", "task_type", "init_lora_weights")
            if k in cfg_json
        }
        if cfg_json.get("peft_type") != "LORA":
            problems.append(f"peft_type is {cfg_json.get('peft_type')!r}, expected 'LORA'")
        init = cfg_json.get("init_lora_weights", True)
        if isinstance(init, str) and init.lower().startswith(BASE_MUTATING_INITS):
            problems.append(
                f"init_lora_weights={init!r}: loading re-runs that init, which rewrites the BASE weights (W -= s*B0*A0) "
                "before the saved A/B are loaded; exported adapters must say true"
            )
        elif init is not True:
            summary["notes"].append(f"init_lora_weights={init!r} (harmless for loading; peft/balora exports write true)")

        inputs = safetensors.torch.load_file(args.inputs)
        theirs = safetensors.torch.load_file(args.logits)
        if args.key in theirs:
            ours_logits = theirs[args.key].float()
        elif len(theirs) == 1:
            ours_logits = next(iter(theirs.values())).float()
        else:
            raise KeyError(f"{args.logits} has no tensor {args.key!r} (has {sorted(theirs)})")

        base = load_base(args.base_dir)
        base_logits = logits_of(base, inputs)
        model, load_problems = load_adapter_strict(base, args.adapter_dir, args.adapter_name)
        problems.extend(load_problems)
        info, kp = key_check(model, args.adapter_dir, args.adapter_name)
        summary["file"] = info
        problems.extend(kp)
        lora_layers = {}
        for name, mod in model.named_modules():
            if hasattr(mod, "lora_A") and args.adapter_name in getattr(mod, "lora_A", {}):
                lora_layers[name.removeprefix("base_model.model.")] = {
                    "r": mod.r[args.adapter_name],
                    "scaling": float(mod.scaling[args.adapter_name]),
                    "dora": bool(mod.use_dora.get(args.adapter_name, False)),
                }
        summary["adapted_modules"] = lora_layers
        peft_logits = logits_of(model, inputs)
        if peft_logits.shape != ours_logits.shape:
            problems.append(f"logits shape: balora {list(ours_logits.shape)} != peft {list(peft_logits.shape)}")
        else:
            d = float((peft_logits - ours_logits).abs().max())
            summary["max_abs_diff"] = d
            if not d <= args.tol:
                problems.append(f"logits differ: max abs {d:.3e} > tol {args.tol:.1e}")
        effect = float((peft_logits - base_logits).abs().max())
        summary["adapter_effect_max_abs"] = effect
        if effect == 0.0 and not args.allow_noop:
            problems.append("adapter does not change the logits at all (lora_B all zero?); pass --allow-noop if intended")
        merged = model.merge_and_unload()
        merged_logits = logits_of(merged, inputs)
        if merged_logits.shape == ours_logits.shape:
            dm = float((merged_logits - ours_logits).abs().max())
            summary["max_abs_diff_merged"] = dm
            if not dm <= args.tol:
                problems.append(f"merged logits differ: max abs {dm:.3e} > tol {args.tol:.1e}")
    except Exception as e:  # report, never crash without a summary
        problems.append(f"error: {type(e).__name__}: {e}")

    summary["ok"] = not problems
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
