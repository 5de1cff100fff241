"""A stateless hashing tokenizer for text encoders trained from scratch: words and punctuation marks (and
optionally their n-grams, as fastText does) hashed into a fixed vocabulary, so there is no vocabulary to build,
save or ship with a run."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import torch
from torch import Tensor

TOKEN = re.compile(r"\w+|[^\w\s]")  # words (unicode letters, digits, underscore) and single punctuation marks
FNV_OFFSET, FNV_PRIME, MASK64 = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


@functools.lru_cache(maxsize=1 << 18)
def fnv1a_64(token: str) -> int:
    """The 64-bit FNV-1a hash of the token's UTF-8 bytes: the same in every process (unlike `hash`)."""
    h = FNV_OFFSET
    for byte in token.encode("utf-8"):
        h = ((h ^ byte) * FNV_PRIME) & MASK64
    return h


def words(text: str) -> list[str]:
    """The lowercased words and punctuation marks of `text`, in order."""
    return TOKEN.findall(text.lower())


class HashingTokenizer:
    """Texts -> LongTensor [n, max_length] of ids in [1, vocab_size), 0 for padding: id = 1 + FNV-1a(token) %
    (vocab_size - 1). With `ngrams` = N > 1 the hashed 2- to N-grams follow the words (fastText's trick for
    word order); truncation to `max_length` therefore drops n-grams before words."""

    def __init__(self, vocab_size: int = 2**16, max_length: int = 64, ngrams: int = 1) -> None:
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (id 0 is padding), got {vocab_size}")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        if ngrams < 1:
            raise ValueError(f"ngrams must be >= 1, got {ngrams}")
        self.vocab_size, self.max_length, self.ngrams = vocab_size, max_length, ngrams

    def ids(self, text: str) -> list[int]:
        """Every id of one text, untruncated: its words, then its 2-grams, ... up to its `ngrams`-grams."""
        tokens = words(text)
        grams = list(tokens)
        for n in range(2, self.ngrams + 1):
            grams += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]  # tokens hold no spaces
        return [1 + fnv1a_64(g) % (self.vocab_size - 1) for g in grams]

    def __call__(self, texts: Sequence[str]) -> Tensor:
        """Texts -> LongTensor [n, max_length], truncated and zero padded at the end."""
        out = torch.zeros(len(texts), self.max_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = self.ids(text)[: self.max_length]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """The number of ids of each text before truncation (words plus n-grams), for "text too long" checks."""
        return [len(self.ids(text)) for text in texts]

    def __repr__(self) -> str:
        return f"HashingTokenizer(vocab_size={self.vocab_size}, max_length={self.max_length}, ngrams={self.ngrams})"
