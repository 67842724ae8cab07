#!/usr/bin/env python3
"""Writes tests/data/smollm2_mixed_text.json: a mixed text (English, code,
accents, CJK, Cyrillic, Greek, emoji, digits, whitespace runs) and its token
ids from an independent tokenizer — Hugging Face `tokenizers` (pip), a BPE
model built from the GGUF file's own vocabulary and merges with SmolLM2's
pre-tokenizer (Digits(individual_digits) + ByteLevel). slm's test compares
its own ids with these.

Usage: pip install tokenizers gguf; tools/gen-bpe-reference.py MODEL.gguf TEXT_FILE > OUT.json
"""
import json
import sys

from gguf import GGUFReader
from tokenizers import Tokenizer, models, pre_tokenizers


def strings(reader, name):
    field = reader.fields[name]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def main():
    model, text_file = sys.argv[1], sys.argv[2]
    reader = GGUFReader(model)
    tokens = strings(reader, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in strings(reader, "tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    text = open(text_file, encoding="utf-8").read()
    json.dump({"model": model.rsplit("/", 1)[-1],
               "made_by": "Hugging Face tokenizers (pip) BPE built from the GGUF vocabulary and merges, pre-tokenizer "
                          "Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False)]; "
                          "tools/gen-bpe-reference.py",
               "text": text, "ids": tok.encode(text).ids}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
