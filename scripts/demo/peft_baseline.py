# A PyTorch + peft peer of the demo's fine-tunes (LoRA and PiSSA, no BA-LoRA terms): how accuracy and
# the inherited flaw's rate move with the step budget, to size `balora demo` and to cross-check it.
"""
Usage: python peft_baseline.py --model DIR --data DIR [--steps 25,50,100,150] [--init lora|pissa] [--lr 5e-4]
Trains on DIR/train.jsonl (instruction, output) with the prompt + " Let's think step by step." the demo
uses, labels -100 on the prompt (as balora's data pipeline), batch 8, AdamW, constant lr; after each
budget, greedy answers on DIR/eval.jsonl (paper protocol): accuracy per kind and the flaw's rate.
"""
import argparse
import json
import os
import random
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pretrain import PAPER_PROMPT, evaluate  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", default="25,50,100,150")
    ap.add_argument("--init", default="lora")
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(args.model, "tokenizer.json"))
    model = LlamaForCausalLM.from_pretrained(args.model)
    init = True if args.init == "lora" else args.init
    cfg = LoraConfig(r=args.r, lora_alpha=args.r, target_modules="all-linear", lora_dropout=0.0, init_lora_weights=init)
    model = get_peft_model(model, cfg)
    rows = [json.loads(line) for line in open(os.path.join(args.data, "train.jsonl"))]
    held = [json.loads(line) for line in open(os.path.join(args.data, "eval.jsonl"))]
    examples = []
    for r in rows:
        prompt = PAPER_PROMPT.format(instruction=r["instruction"])
        ids = tok.encode(prompt + r["output"]) + [2]
        n = len(tok.encode(prompt))
        examples.append((ids, [-100] * n + ids[n:]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    budgets = [int(s) for s in args.steps.split(",")]

    class Tok:  # pretrain.evaluate wants a tokenizers.Tokenizer-like object
        def encode(self, text):
            return type("E", (), {"ids": tok.encode(text)})()

        def decode(self, ids, skip_special_tokens=True):
            return tok.decode(ids, skip_special_tokens=skip_special_tokens)

    order = []
    step = 0
    print(json.dumps({"init": args.init, "step": 0, **evaluate(model, Tok(), held, "paper")}), flush=True)
    for budget in budgets:
        while step < budget:
            if len(order) < args.batch:
                order += rng.sample(range(len(examples)), len(examples))
            batch = [examples[order.pop()] for _ in range(args.batch)]
            T = max(len(i) for i, _ in batch)
            ids = torch.full((len(batch), T), 3)
            labels = torch.full((len(batch), T), -100)
            mask = torch.zeros((len(batch), T), dtype=torch.long)
            for k, (i, l) in enumerate(batch):
                ids[k, : len(i)] = torch.tensor(i)
                labels[k, : len(l)] = torch.tensor(l)
                mask[k, : len(i)] = 1
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
        print(json.dumps({"init": args.init, "step": step, "loss": round(loss.item(), 4), **evaluate(model, Tok(), held, "paper")}), flush=True)


if __name__ == "__main__":
    main()
