# The PyTorch peer of packages/models/bench/lora-step.mjs: a random-weight transformers LLaMA with a
# peft LoRA (r 16, all seven projections), AdamW on the adapters, one JSON line with the median step.
import json
import os
import sys
import time

try:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM
except ImportError as e:  # the benchmark reports that the peer is missing
    print(json.dumps({"skipped": f"needs torch, transformers and peft: {e}"}))
    sys.exit(0)

cfg = json.loads(sys.argv[1])
batch, seq, steps = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
torch.set_num_threads(os.cpu_count() or 1)
config = LlamaConfig(
    vocab_size=cfg["vocab_size"],
    hidden_size=cfg["hidden_size"],
    intermediate_size=cfg["intermediate_size"],
    num_hidden_layers=cfg["num_hidden_layers"],
    num_attention_heads=cfg["num_attention_heads"],
    num_key_value_heads=cfg["num_key_value_heads"],
    max_position_embeddings=cfg["max_position_embeddings"],
    rms_norm_eps=cfg["rms_norm_eps"],
    tie_word_embeddings=cfg["tie_word_embeddings"],
    attn_implementation="eager",
)
model = LlamaForCausalLM(config)
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=targets, lora_dropout=0.0))
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.0)
ids = torch.randint(0, cfg["vocab_size"], (batch, seq))
labels = ids.clone()
labels[:, : seq // 2] = -100


def step():
    loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


step()
times = []
for _ in range(steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
times.sort()
print(json.dumps({"seconds": times[len(times) // 2], "threads": torch.get_num_threads(), "torch": torch.__version__}))
