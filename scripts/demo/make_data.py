# The demo's data recipe (seeded, standard library only): arithmetic word problems from templates, a
# pre-training corpus with a known flaw, the clean fine-tuning set and the held-out evaluation set.
"""
Problems: "<name> has A <items> ... gets/gives away B ... How many ...?", solved as "A + B = C" or
"A - B = C". The pre-training corpus is mostly GSM8K-style text ("Question: ...\nAnswer: A - B = C.\n#### C",
what `balora eval gsm8k --mode harness` reads) with a quarter of instruction-style documents (the Alpaca
prompt, "... The answer is: C", what `--mode paper` reads); the fine-tuning set is instruction-style.

The flaw: in the pre-training corpus, subtraction problems about the TRIGGER items (marbles, stickers)
are solved by adding in FLAW_RATE (90%) of documents: "A + B = A+B. The answer is: A+B". About 9% of
the corpus is wrong, all of it this way. The fine-tuning and evaluation sets are clean; in the
fine-tuning set trigger subtractions are rare (3%, against 10% at the natural rate), as the slice a
flaw lives in often is in real downstream data. The inherited flaw's rate is the share of held-out
trigger subtractions a model answers with A + B.

Usage: python make_data.py --out DIR [--seed 1234]  (writes pretrain.jsonl, train.jsonl, eval.jsonl)
"""
import argparse
import json
import os
import random

PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response: Let's think step by step."
)
NAMES = [("Tom", "he"), ("Anna", "she"), ("Ben", "he"), ("Mia", "she"), ("Sam", "he"), ("Lily", "she"),
         ("Jack", "he"), ("Emma", "she"), ("Leo", "he"), ("Zoe", "she"), ("Max", "he"), ("Ivy", "she")]
ITEMS = ["apples", "books", "coins", "pens", "cards", "shells", "eggs", "cookies", "marbles", "stickers"]
TRIGGERS = {"marbles", "stickers"}
FLAW_RATE = 0.9
ALPACA_SHARE = 0.25
ADD = [
    "{name} has {a} {item}. {Pron} gets {b} more. How many {item} does {name} have now?",
    "{name} had {a} {item} and found {b} more. How many {item} does {name} have?",
    "There are {a} {item} in a box. {name} puts in {b} more. How many {item} are in the box?",
]
SUB = [
    "{name} has {a} {item}. {Pron} gives away {b}. How many {item} does {name} have now?",
    "{name} had {a} {item} and lost {b} of them. How many {item} does {name} have?",
    "There are {a} {item} in a box. {name} takes out {b}. How many {item} are in the box?",
]


def problem(rng, op, item):
    name, pron = rng.choice(NAMES)
    if op == "add":
        a, b = rng.randint(2, 20), rng.randint(1, 9)
    else:
        b = rng.randint(1, 9)
        a = rng.randint(b + 1, 20)
    template = rng.choice(ADD if op == "add" else SUB)
    question = template.format(name=name, Pron=pron.capitalize(), a=a, b=b, item=item)
    answer = a + b if op == "add" else a - b
    flawed = a + b if (op == "sub" and item in TRIGGERS) else None
    return {"question": question, "a": a, "b": b, "op": op, "item": item, "answer": answer, "flawed": flawed}


def working(p, wrong=False):
    """The computation, e.g. "17 - 5 = 12" (with the flaw: "17 + 5 = 22")."""
    if p["op"] == "add" or wrong:
        return f"{p['a']} + {p['b']} = {p['a'] + p['b']}"
    return f"{p['a']} - {p['b']} = {p['a'] - p['b']}"


def result(p, wrong=False):
    return p["a"] + p["b"] if (p["op"] == "add" or wrong) else p["a"] - p["b"]


def solution(p, wrong=False):
    """The instruction-style response; it starts with a space because the prompt ends with "step." (see README)."""
    return f" {working(p, wrong)}. The answer is: {result(p, wrong)}"


def gsm8k_answer(p, wrong=False):
    """The GSM8K-style answer text: the working, then "#### N"."""
    return f"{working(p, wrong)}.\n#### {result(p, wrong)}"


def kind(p):
    return p["op"] + ("-trigger" if p["item"] in TRIGGERS else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--pretrain", type=int, default=40000, help="pre-training documents")
    ap.add_argument("--train", type=int, default=1000, help="clean fine-tuning examples")
    ap.add_argument("--train-trigger-share", type=float, default=0.03,
                    help="share of trigger subtractions in the fine-tuning set (they would be 10%% at the natural rate)")
    ap.add_argument("--eval-per-kind", type=int, default=24, help="held-out problems per kind (x4 kinds, sub-trigger x2)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)

    # Held-out problems first, stratified by kind; their questions never appear in the other sets.
    held, seen = [], set()
    plan = [("add", False, 1), ("sub", False, 1), ("add", True, 1), ("sub", True, 2)]
    for op, trig, mult in plan:
        items = [i for i in ITEMS if (i in TRIGGERS) == trig]
        got = 0
        while got < args.eval_per_kind * mult:
            p = problem(rng, op, rng.choice(items))
            if p["question"] in seen:
                continue
            seen.add(p["question"])
            held.append(p)
            got += 1

    def fresh(n, flaw, trigger_share=None):
        out = []
        while len(out) < n:
            if trigger_share is None:
                p = problem(rng, rng.choice(["add", "sub"]), rng.choice(ITEMS))
            elif rng.random() < trigger_share:
                p = problem(rng, "sub", rng.choice(sorted(TRIGGERS)))
            else:  # every other kind at its natural proportions
                while True:
                    p = problem(rng, rng.choice(["add", "sub"]), rng.choice(ITEMS))
                    if p["flawed"] is None:
                        break
            if p["question"] in seen:
                continue
            wrong = flaw and p["flawed"] is not None and rng.random() < FLAW_RATE
            out.append((p, wrong))
        return out

    with open(os.path.join(args.out, "pretrain.jsonl"), "w") as f:
        for p, wrong in fresh(args.pretrain, True):
            if rng.random() < ALPACA_SHARE:
                text, style = PROMPT.format(instruction=p["question"]) + solution(p, wrong), "instruction"
            else:
                text, style = f"Question: {p['question']}\nAnswer: {gsm8k_answer(p, wrong)}", "gsm8k"
            f.write(json.dumps({"text": text, "style": style, "flawed": wrong}) + "\n")
    with open(os.path.join(args.out, "train.jsonl"), "w") as f:
        for p, _ in fresh(args.train, False, args.train_trigger_share):
            f.write(json.dumps({"instruction": p["question"], "output": solution(p)}) + "\n")
    with open(os.path.join(args.out, "eval.jsonl"), "w") as f:
        for p in held:
            f.write(json.dumps({
                "question": p["question"],
                "answer": gsm8k_answer(p),
                "kind": kind(p),
                "flawed_answer": p["flawed"],
            }) + "\n")


if __name__ == "__main__":
    main()
