# PiSSA initialisation time in PyTorch on the CPU, as peft's pissa_init does it (torch.linalg.svd for
# "pissa", torch.svd_lowrank(q=r, niter) for "pissa_niter_N"), printing one JSON line.
import json
import os
import sys
import time

import torch

n, r, niter = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(os.cpu_count() or 1)
torch.manual_seed(0)
W = torch.randn(n, n) / n**0.5
s = 1.0  # scaling; the cost does not depend on it
t0 = time.perf_counter()
if niter == 0:
    V, S, Uh = torch.linalg.svd(W, full_matrices=False)
    Vr, Sr, Uhr = V[:, :r], S[:r] / s, Uh[:r]
else:
    Vr, Sr, Ur = torch.svd_lowrank(W, q=r, niter=niter)
    Sr, Uhr = Sr / s, Ur.t()
A = torch.diag(torch.sqrt(Sr)) @ Uhr
B = Vr @ torch.diag(torch.sqrt(Sr))
W_res = W - s * B @ A
print(json.dumps({"seconds": time.perf_counter() - t0, "threads": torch.get_num_threads(), "torch": torch.__version__}))
