# Pre-trains the demo's tiny LLaMA on the flawed corpus of make_data.py and writes an HF model
# directory (config, model.safetensors, tokenizer.json, ...) that @balora/models loads.
"""
Usage: python pretrain.py --data DIR --out DIR [--steps 2000] [--seed 1234]
Needs torch >= 2.0, transformers >= 4.40 and tokenizers >= 0.15 (CPU is enough: a few minutes on 2 cores).

1. A byte-level BPE tokenizer (vocab 512) trained on the corpus: digits are single tokens (a space may
   lead the first), words become whole tokens; BOS added in front, EOS ends every document.
2. LlamaForCausalLM (hidden 64, 4 layers, 4 heads, MLP 192, 128 positions) trained on every token of
   the documents (causal LM), AdamW, cosine schedule, batch 32.
3. Greedy answers on the held-out set in both protocols: accuracy per kind and the flaw's rate, as JSON
   (also kept in pretraining.json beside the model).
"""
import argparse
import json
import math
import os
import random
import re
import time

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

SPECIAL = ["<unk>", "<s>", "</s>", "<pad>"]
PAPER_PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response: Let's think step by step."
)
SPLIT = r" ?\p{L}+| ?\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def build_tokenizer(texts, vocab_size):
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tok


def write_tokenizer_files(tok, out, max_len):
    tok.save(os.path.join(out, "tokenizer.json"))
    cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "model_max_length": max_len,
        "clean_up_tokenization_spaces": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    json.dump(cfg, open(os.path.join(out, "tokenizer_config.json"), "w"), indent=2)


def extract_paper(text):
    # the paper protocol's extraction (balora eval gsm8k --mode paper), enough for integers
    parts = text.split("The answer is: ")
    if len(parts) < 2:
        return None
    m = re.search(r"[\-+]?\d*[\.,/]?\d+", parts[-1].strip())
    return round(float(m.group().replace(",", ""))) if m and "/" not in m.group() else None


def extract_strict(text):
    # the harness's strict-match (balora eval gsm8k --mode harness), as an integer
    m = re.search(r"#### (\-?[0-9\.\,]+)", text)
    try:
        return int(m.group(1).replace(",", "").rstrip(".")) if m else None
    except ValueError:
        return None


PROTOCOLS = {
    "paper": (PAPER_PROMPT, ("Instruction", "Response"), extract_paper),
    "harness": ("Question: {instruction}\nAnswer:", ("Question:",), extract_strict),
}


@torch.no_grad()
def evaluate(model, tok, problems, protocol):
    prompt, stops, extract = PROTOCOLS[protocol]
    model.eval()
    rows = []
    for p in problems:
        ids = tok.encode(prompt.format(instruction=p["question"])).ids
        x = torch.tensor([ids])
        out = model.generate(x, max_new_tokens=24, do_sample=False, eos_token_id=2, pad_token_id=3)
        text = tok.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)
        for s in stops:
            if s in text:
                text = text[: text.index(s)]
        rows.append((p, extract(text)))
    model.train()
    kinds = sorted({p["kind"] for p, _ in rows})
    acc = {k: sum(a == int(p["answer"].split("#### ")[1]) for p, a in rows if p["kind"] == k) / sum(p["kind"] == k for p, _ in rows)
           for k in kinds}
    acc["all"] = sum(a == int(p["answer"].split("#### ")[1]) for p, a in rows) / len(rows)
    flawed = [(p, a) for p, a in rows if p["flawed_answer"] is not None]
    return {"accuracy": acc, "flaw_rate": sum(a == p["flawed_answer"] for p, a in flawed) / len(flawed)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=192)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for this size on a busy 2-core machine)")
    ap.add_argument("--eval-every", type=int, default=0, help="print held-out results every N steps (on a quarter of the set)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    docs = [json.loads(line)["text"] for line in open(os.path.join(args.data, "pretrain.jsonl"))]
    held = [json.loads(line) for line in open(os.path.join(args.data, "eval.jsonl"))]

    max_len = 128
    tok = build_tokenizer(docs, args.vocab)
    write_tokenizer_files(tok, args.out, max_len)
    encoded = [e.ids + [2] for e in tok.encode_batch(docs)]
    longest = max(len(e) for e in encoded)
    print(json.dumps({"documents": len(docs), "vocab": tok.get_vocab_size(), "longest": longest,
                      "mean_tokens": sum(map(len, encoded)) / len(encoded)}), flush=True)
    assert longest <= max_len

    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=4, head_dim=args.hidden // 4,
        max_position_embeddings=max_len, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=3, hidden_act="silu", initializer_range=0.02,
    )
    model = LlamaForCausalLM(config)
    print(json.dumps({"parameters": sum(p.numel() for p in model.parameters())}), flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = max(1, args.steps // 30)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, args.steps - warmup))))
    order = []
    t0 = time.time()
    model.train()
    for step in range(args.steps):
        if len(order) < args.batch:
            order += random.sample(range(len(encoded)), len(encoded))
        batch = [encoded[order.pop()] for _ in range(args.batch)]
        T = max(map(len, batch))
        ids = torch.full((len(batch), T), 3, dtype=torch.long)
        labels = torch.full((len(batch), T), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), T), dtype=torch.long)
        for i, e in enumerate(batch):
            ids[i, : len(e)] = torch.tensor(e)
            labels[i, 1 : len(e)] = torch.tensor(e[1:])
            mask[i, : len(e)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 250 == 0 or step == args.steps - 1:
            print(json.dumps({"step": step, "loss": round(loss.item(), 4), "lr": sched.get_last_lr()[0], "s": round(time.time() - t0, 1)}), flush=True)
        if args.eval_every and step % args.eval_every == 0 and step > 0:
            print(json.dumps({"step": step, "harness": evaluate(model, tok, held[::4], "harness")}), flush=True)
    result = {p: evaluate(model, tok, held, p) for p in PROTOCOLS}
    print(json.dumps(result), flush=True)
    model.save_pretrained(args.out, safe_serialization=True)
    GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=3, do_sample=False).save_pretrained(args.out)
    json.dump({"recipe": vars(args), "held_out": result, "seconds": round(time.time() - t0, 1)},
              open(os.path.join(args.out, "pretraining.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
