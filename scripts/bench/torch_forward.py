# PyTorch CPU forward of the ~100M-parameter LLaMA benchmark config, with the golden script's mirror of
# HF eager numerics, printing one JSON line. Called by packages/models/bench/forward.mjs when torch exists.
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
from hf_mirror import forward, make_params  # noqa: E402

config = json.loads(sys.argv[1])
seq = int(sys.argv[2])
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
torch.set_num_threads(os.cpu_count() or 1)
torch.manual_seed(0)
gen = torch.Generator().manual_seed(0)
P = make_params(config, "causal", gen, embed_std=0.02)
ids = torch.randint(0, config["vocab_size"], (1, seq), generator=gen)
am = torch.ones_like(ids)
with torch.no_grad():
    forward(config, P, ids, am, torch.float32)  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        forward(config, P, ids, am, torch.float32)
        times.append(time.perf_counter() - t0)
times.sort()
print(json.dumps({"seconds": times[len(times) // 2], "threads": torch.get_num_threads(), "torch": torch.__version__}))
