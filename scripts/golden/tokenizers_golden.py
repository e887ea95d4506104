# Tiny tokenizer.json files for the three tokenizer families (LLaMA-2, LLaMA-3, Gemma) and golden id
# tables from the Rust `tokenizers` library and from transformers' AutoTokenizer, for @balora/models.
# Run (needs tokenizers + transformers): /tmp/hfenv/bin/python scripts/golden/tokenizers_golden.py
#
# Writes packages/models/test/fixtures/tokenizers/{llama2,llama3,gemma}/{tokenizer.json,tokenizer_config.json}
# and packages/models/test/fixtures/tokenizers/golden.json. hf_mirror.py copies these into the model fixtures.
# Vocabularies are trained with the library's BPE trainer on GSM8K questions; rerunning gives identical files.
import argparse
import json
import os
import sys

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "packages", "models", "test", "fixtures", "tokenizers")
DATA = "/work/shared/data/gsm8k_test.jsonl"

BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Strings for the golden table: spaces at the ends and in runs, newlines, digits, punctuation, non-ASCII
# (byte fallback), the empty string and literal special-token text (added-token splitting).
STRINGS = [
    "Hello world",
    "Janet’s ducks lay 16 eggs per day.",
    " leading space",
    "trailing space ",
    "multiple   spaces  inside",
    "   ",
    "line one\nline two\n\nthree",
    "tabs\tand\r\nCRLF",
    "12345 and 3.14159 and 1,000,000",
    'Punctuation!? (yes) [no] {maybe}: "quoted" \'single\' - dash',
    "café 東京 🙂",
    "",
    "She makes $18 every day at the farmers' market.",
    "I'm sure they'll say it's what we've done, isn't it? YOU'D KNOW",
    "ALL CAPS and MiXeD cAsE",
    "a",
    "emoji 🙂🙂 and ZWJ 👩‍💻",
    "naïve résumé ñ ü ß",
    "   leading and trailing   ",
    "antidisestablishmentarianism",
    "007 0 9876543210",
    "<s>text</s> <bos>more<eos> <|begin_of_text|>end",
]


def questions(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line)["question"] for line in fh if line.strip()]


def trained_vocab_and_merges(tok):
    m = json.loads(tok.to_str())["model"]
    vocab = sorted(m["vocab"].items(), key=lambda kv: kv[1])
    merges = [tuple(x.split(" ")) if isinstance(x, str) else tuple(x) for x in m["merges"]]
    return [t for t, _ in vocab], merges


def added(content):
    return {"content": content, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}


def build_sentencepiece_like(texts, specials, n_trained, prepend):
    """LLaMA-2 / Gemma style: '▁' for spaces, BPE with byte fallback, 256 <0xNN> tokens after the specials."""
    norm = [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")] if prepend else [normalizers.Replace(" ", "▁")]
    t = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    t.normalizer = normalizers.Sequence(norm)
    # training only: split before each '▁' like sentencepiece does, so merges never cross words
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(vocab_size=n_trained, special_tokens=specials, limit_alphabet=64, show_progress=False)
    t.train_from_iterator(texts, trainer)
    learned, merges = trained_vocab_and_merges(t)
    learned = [x for x in learned if x not in specials]
    vocab = {}
    for s in specials + BYTE_TOKENS + learned:
        vocab[s] = len(vocab)
    return vocab, merges


def llama2(texts):
    specials = ["<unk>", "<s>", "</s>"]
    vocab, merges = build_sentencepiece_like(texts, specials, 512 - 256, prepend=True)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", vocab["<s>"])]
    )
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {str(vocab[s]): added(s) for s in specials},
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": True,
        "model_max_length": 256,
        "pad_token": None,
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    return tok, config


def gemma(texts):
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    vocab, merges = build_sentencepiece_like(texts, specials, 512 - 256, prepend=False)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos>:1 $B:1", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {str(vocab[s]): added(s) for s in specials},
        "bos_token": "<bos>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "<eos>",
        "mask_token": "<mask>",
        "model_max_length": 256,
        "pad_token": "<pad>",
        "sp_model_kwargs": {},
        "spaces_between_special_tokens": False,
        "tokenizer_class": "GemmaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    return tok, config


def llama3(texts):
    split = pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False)
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)
    t = Tokenizer(models.BPE(ignore_merges=True))
    t.pre_tokenizer = pre_tokenizers.Sequence([split, bl])
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    t.train_from_iterator(texts, trainer)
    learned, merges = trained_vocab_and_merges(t)
    vocab = {s: i for i, s in enumerate(learned)}
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([split, bl])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    bos_id = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                special_tokens=[("<|begin_of_text|>", bos_id)],
            ),
        ]
    )
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {str(tok.token_to_id(s)): added(s) for s in specials},
        "bos_token": "<|begin_of_text|>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|end_of_text|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 256,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    return tok, config


def golden_rows(tok, hf):
    rows = []
    for text in STRINGS:
        enc = tok.encode(text)
        plain = tok.encode(text, add_special_tokens=False)
        hf_ids = hf(text)["input_ids"]
        hf_plain = hf(text, add_special_tokens=False)["input_ids"]
        row = {
            "text": text,
            "ids": enc.ids,
            "tokens": enc.tokens,
            "ids_no_special": plain.ids,
            "hf_ids": hf_ids,
            "hf_ids_no_special": hf_plain,
            "decode": tok.decode(enc.ids, skip_special_tokens=False),
            "decode_skip_special": tok.decode(enc.ids, skip_special_tokens=True),
            "hf_decode": hf.decode(enc.ids, skip_special_tokens=False),
            "hf_decode_skip_special": hf.decode(enc.ids, skip_special_tokens=True),
        }
        row["hf_matches"] = hf_ids == enc.ids and hf_plain == plain.ids
        row["hf_decode_matches"] = (row["decode"], row["decode_skip_special"]) == (row["hf_decode"], row["hf_decode_skip_special"])
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=DATA)
    args = ap.parse_args()
    texts = questions(args.data)
    from transformers import AutoTokenizer
    import transformers

    golden = {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__, "families": {}}
    for family, build in [("llama2", llama2), ("llama3", llama3), ("gemma", gemma)]:
        tok, config = build(texts)
        d = os.path.join(OUT, family)
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"), pretty=True)
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2, ensure_ascii=False, sort_keys=True)
            fh.write("\n")
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))  # exactly what the files say
        hf = AutoTokenizer.from_pretrained(d)
        rows = golden_rows(tok, hf)
        vocab_size = tok.get_vocab_size(with_added_tokens=True)
        golden["families"][family] = {
            "vocab_size": vocab_size,
            "hf_class": type(hf).__name__,
            "hf_len": len(hf),
            "special": {k: config.get(k) for k in ("bos_token", "eos_token", "unk_token", "pad_token") if config.get(k)},
            "special_ids": {
                k: tok.token_to_id(config[k]) for k in ("bos_token", "eos_token", "unk_token", "pad_token") if config.get(k)
            },
            "cases": rows,
        }
        bad = [r["text"] for r in rows if not r["hf_matches"]]
        bad_dec = [r["text"] for r in rows if not r["hf_decode_matches"]]
        print(f"{family}: vocab {vocab_size}, {type(hf).__name__} len {len(hf)}, transformers ids differ for {bad}, decode for {bad_dec}")
    with open(os.path.join(OUT, "golden.json"), "w", encoding="utf-8") as fh:
        json.dump(golden, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    print("wrote", os.path.relpath(OUT, ROOT))


if __name__ == "__main__":
    sys.exit(main())
