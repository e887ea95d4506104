# A small safetensors reader/writer for the golden scripts, so hf_mirror.py runs on Debian's python3-torch
# without the `safetensors` package. Writes what the reference Rust writer writes (checked in crosscheck).
#
# Layout: u64-LE header length N, compact JSON header ("__metadata__" first, then tensors in data order),
# space-padded so that 8 + N is a multiple of 8, then the data. Tensors are sorted by descending element
# size, then by name, so every offset is a multiple of its element size.
import json
import os

import torch

# dtype -> (safetensors name, bytes per element, integer dtype of the same width used to get the bytes)
DTYPES = {
    torch.float64: ("F64", 8, torch.int64),
    torch.int64: ("I64", 8, torch.int64),
    torch.float32: ("F32", 4, torch.int32),
    torch.int32: ("I32", 4, torch.int32),
    torch.bfloat16: ("BF16", 2, torch.int16),
    torch.float16: ("F16", 2, torch.int16),
    torch.int16: ("I16", 2, torch.int16),
    torch.uint8: ("U8", 1, torch.uint8),
    torch.int8: ("I8", 1, torch.int8),
    torch.bool: ("BOOL", 1, torch.uint8),
}
BY_NAME = {v[0]: k for k, v in DTYPES.items()}


def tensor_bytes(t):
    name, size, as_int = DTYPES[t.dtype]
    flat = t.detach().contiguous().reshape(-1)
    if t.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    elif as_int != t.dtype:
        flat = flat.view(as_int)
    return flat.numpy().tobytes()  # little-endian host (x86/arm)


def serialize(tensors, metadata=None):
    """tensors: dict name -> torch.Tensor. Returns the file bytes."""
    metadata = {"format": "pt"} if metadata is None else metadata
    order = sorted(tensors, key=lambda n: (-DTYPES[tensors[n].dtype][1], n))
    header = {"__metadata__": metadata}
    chunks, offset = [], 0
    for n in order:
        t = tensors[n]
        b = tensor_bytes(t)
        header[n] = {"dtype": DTYPES[t.dtype][0], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    return len(h).to_bytes(8, "little") + h + b"".join(chunks)


def save_file(tensors, path, metadata=None):
    data = serialize(tensors, metadata)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def load_file(path):
    """Returns (dict name -> tensor, metadata)."""
    with open(path, "rb") as fh:
        raw = fh.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        dtype = BY_NAME[info["dtype"]]
        _, size, as_int = DTYPES[dtype]
        b0, b1 = info["data_offsets"]
        buf = bytearray(raw[base + b0 : base + b1])
        t = torch.frombuffer(buf, dtype=as_int) if b1 > b0 else torch.zeros(0, dtype=as_int)
        if dtype == torch.bool:
            t = t.to(torch.bool)
        elif as_int != dtype:
            t = t.view(dtype)
        out[name] = t.reshape(info["shape"]).clone()
    return out, meta


def save_sharded(tensors, directory, n_shards):
    """HF layout: model.safetensors when n_shards == 1, else model-0000i-of-0000n.safetensors + index.
    Tensors are split in key order into n_shards groups of about equal byte size."""
    names = list(tensors)
    if n_shards == 1:
        save_file(tensors, os.path.join(directory, "model.safetensors"))
        return ["model.safetensors"]
    sizes = [len(tensor_bytes(tensors[n])) for n in names]
    total = sum(sizes)
    groups, acc, cur = [[] for _ in range(n_shards)], 0, 0
    for n, s in zip(names, sizes):
        # move to the next shard once this one holds its share (never leave a later shard empty)
        if groups[cur] and acc >= total * (cur + 1) / n_shards and cur < n_shards - 1:
            cur += 1
        groups[cur].append(n)
        acc += s
    assert all(groups), "too few tensors for the shard count"
    files, weight_map = [], {}
    for i, g in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
        save_file({n: tensors[n] for n in g}, os.path.join(directory, fname))
        files.append(fname)
        for n in g:
            weight_map[n] = fname
    numel = sum(tensors[n].numel() for n in names)
    index = {"metadata": {"total_parameters": numel, "total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as fh:
        json.dump(index, fh, indent=2)
        fh.write("\n")
    return files
