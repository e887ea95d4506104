# Writes the golden files in this folder with the reference implementation (safetensors' Rust
# writer through its Python binding, huggingface_hub's shard planner), so tests can diff our bytes.
#
# Run: python3 -m venv /tmp/stv && /tmp/stv/bin/pip install safetensors==0.8.0 numpy huggingface_hub==1.33.0
#      /tmp/stv/bin/python packages/safetensors/test/golden/make_golden.py
# `serialize_file(TensorSpec...)` is exactly what `safetensors.torch.save_file` calls after
# flattening torch tensors, so these bytes are what `save_file` writes for the same tensors.
import json
import os
import shutil

import numpy as np
from huggingface_hub.serialization._base import split_state_dict_into_shards_factory
from safetensors import TensorSpec, serialize_file

HERE = os.path.dirname(os.path.abspath(__file__))
KEEP = []  # numpy arrays whose memory the specs point to

# safetensors dtype -> (torch dtype name the binding takes, bytes per element)
DTYPES = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1),
    "U8": ("uint8", 1), "BOOL": ("bool", 1), "U16": ("uint16", 2), "U32": ("uint32", 4),
    "U64": ("uint64", 8), "F8_E4M3": ("float8_e4m3fn", 1), "F8_E5M2": ("float8_e5m2", 1),
}


def pattern(nbytes, seed):
    """Deterministic bytes, the same formula as test/golden.test.ts uses."""
    return bytes((i * 37 + seed * 11 + 5) % 256 for i in range(nbytes))


def spec(dtype, shape, raw):
    name, size = DTYPES[dtype]
    numel = int(np.prod(shape)) if shape else 1
    assert len(raw) == numel * size, (dtype, shape, len(raw))
    arr = np.frombuffer(raw, dtype=np.uint8).copy()
    KEEP.append(arr)
    return TensorSpec(dtype=name, shape=list(shape), data_ptr=arr.ctypes.data, data_len=arr.nbytes)


def save(path, tensors, metadata=None):
    serialize_file({k: spec(*v) for k, v in tensors.items()}, path, metadata=metadata)


def numel(shape):
    return int(np.prod(shape)) if shape else 1


def main():
    # 1. The fixture the tests also spell out in hex: F32 [2,2], BF16 [3], I64 scalar, {"format":"pt"}.
    save(os.path.join(HERE, "mixed.safetensors"), {
        "w": ("F32", [2, 2], np.array([1, 2, 3, 4], dtype="<f4").tobytes()),
        "b": ("BF16", [3], np.array([0x3F80, 0x4000, 0xC040], dtype="<u2").tobytes()),
        "step": ("I64", [], np.array(7, dtype="<i8").tobytes()),
    }, metadata={"format": "pt"})

    # 2. Every supported dtype, names interleaved so that dtype order and name order disagree.
    shapes = {
        "F64": [3], "F32": [2, 3], "F16": [5], "BF16": [1, 3], "I64": [], "I32": [0, 4],
        "I16": [3], "I8": [7], "U8": [2, 2, 2], "BOOL": [5], "U16": [3], "U32": [1],
        "U64": [2], "F8_E4M3": [3], "F8_E5M2": [0],
    }
    tensors = {}
    for seed, (dtype, shape) in enumerate(shapes.items()):
        nbytes = numel(shape) * DTYPES[dtype][1]
        raw = bytes(b & 1 for b in pattern(nbytes, seed)) if dtype == "BOOL" else pattern(nbytes, seed)
        tensors[f"t{(seed * 7) % 15:02d}.{dtype.lower()}"] = (dtype, shape, raw)
    save(os.path.join(HERE, "all-dtypes.safetensors"), tensors)

    # 3. No tensors, without and with an (empty) metadata map.
    save(os.path.join(HERE, "empty.safetensors"), {})
    save(os.path.join(HERE, "empty-metadata.safetensors"), {}, metadata={})

    # 4. Names that need JSON escaping and UTF-8 byte ordering (U+FF00 sorts before U+1F600 in
    #    UTF-8 but after it in UTF-16), integer-like names, the empty name; one metadata key.
    names = ["0", "10", "9", "a\"b", "back\\slash", "new\nline", "ctl\x01\x1f\x7f", "ñ",
             "\uff00", "\U0001F600", "\u2028", ""]
    save(os.path.join(HERE, "names.safetensors"),
         {n: ("U8", [1], bytes([i])) for i, n in enumerate(names)},
         metadata={"k\t\"é": "v\x00\u2029/\\"})

    # 5. A sharded checkpoint exactly as huggingface_hub's save_torch_state_dict writes it:
    #    per-shard metadata {"format": "pt"}, user metadata only in the index, json.dump(indent=2).
    out = os.path.join(HERE, "sharded")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    state = {}
    for seed, (name, dtype, shape) in enumerate([
        ("embed.weight", "BF16", [4, 5]), ("layers.0.q.weight", "F32", [2, 4]),
        ("layers.0.norm", "F32", [4]), ("lm_head.weight", "F32", [5, 6]),
        ("layers.1.q.weight", "BF16", [2, 4]), ("ñorm", "F16", [3]), ("bias", "F32", [0]),
    ]):
        state[name] = (dtype, shape, pattern(numel(shape) * DTYPES[dtype][1], seed))
    split = split_state_dict_into_shards_factory(
        state, get_storage_size=lambda t: len(t[2]), filename_pattern="model{suffix}.safetensors",
        max_shard_size=48)
    for filename, keys in split.filename_to_tensors.items():
        save(os.path.join(out, filename), {k: state[k] for k in keys}, metadata={"format": "pt"})
    index = {"metadata": {**split.metadata, "note": "golden"}, "weight_map": split.tensor_to_filename}
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)


if __name__ == "__main__":
    main()
