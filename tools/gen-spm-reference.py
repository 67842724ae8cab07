#!/usr/bin/env python3
"""Writes tests/data/gemma3_mixed_text.json: the mixed text of
tests/data/smollm2_mixed_text.json and its token ids on Gemma 3's
SentencePiece vocabulary from an independent tokenizer — Hugging Face
`tokenizers` (pip): a byte-fallback BPE whose merges are extracted from the
GGUF vocabulary and scores the way transformers' SentencePieceExtractor does
(every split of a normal piece into two pieces, ordered by the piece's
score), spaces normalised to U+2581 (add_space_prefix is false for Gemma 3),
and the user-defined pieces (whitespace runs, tags) as added tokens.

Usage: pip install tokenizers gguf; tools/gen-spm-reference.py MODEL.gguf TEXT_JSON > OUT.json
"""
import json
import sys

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, models, normalizers


def field(reader, name, conv):
    f = reader.fields[name]
    return [conv(f.parts[i]) for i in f.data]


def main():
    model, text_json = sys.argv[1], sys.argv[2]
    reader = GGUFReader(model)
    tokens = field(reader, "tokenizer.ggml.tokens", lambda p: bytes(p).decode("utf-8"))
    scores = field(reader, "tokenizer.ggml.scores", lambda p: float(p[0]))
    types = field(reader, "tokenizer.ggml.token_type", lambda p: int(p[0]))
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for piece, pid in vocab.items():
        if types[pid] != 1:  # normal pieces only
            continue
        for k in range(1, len(piece)):
            a, b = piece[:k], piece[k:]
            if a in vocab and b in vocab:
                merges.append((a, b, pid))
    merges.sort(key=lambda m: (-scores[m[2]], vocab[m[0]], vocab[m[1]]))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[(a, b) for a, b, _ in merges], byte_fallback=True, fuse_unk=True,
                               unk_token="<unk>"))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.add_tokens([AddedToken(tokens[i], normalized=False, special=False) for i in range(len(tokens)) if types[i] == 4])
    text = json.load(open(text_json, encoding="utf-8"))["text"]
    json.dump({"model": model.rsplit("/", 1)[-1],
               "made_by": "Hugging Face tokenizers (pip): byte-fallback BPE with merges extracted from the GGUF "
                          "vocabulary and scores (as transformers' SentencePieceExtractor), spaces -> U+2581, "
                          "user-defined pieces as added tokens; tools/gen-spm-reference.py",
               "text": text, "ids": tok.encode(text).ids}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
