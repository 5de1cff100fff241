"""Frozen text embeddings computed once and kept on disk, keyed by the encoder's digest and the texts' digest;
and the featurizers the recipe layer calls to turn texts into model inputs (cached embeddings or token ids)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from ...progress import progress as progress_bar

FOLDER = "text-embeddings"
CHUNK_BATCHES = 16  # embed this many batches between progress updates


@runtime_checkable
class TextEmbedder(Protocol):
    """A frozen encoder whose embeddings can be cached: SentenceEncoder."""

    embedding_dim: int
    max_length: int

    @property
    def digest(self) -> str: ...

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> Tensor: ...

    def lengths(self, texts: Sequence[str]) -> list[int]: ...


def texts_digest(texts: Sequence[str]) -> str:
    """SHA-256 of the texts in order, each length-prefixed (["ab", "c"] and ["a", "bc"] differ)."""
    h = hashlib.sha256(len(texts).to_bytes(8, "little"))
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def cache_path(encoder: TextEmbedder, texts: Sequence[str], cache: Path) -> Path:
    """Where the embeddings of `texts` by `encoder` are kept: CACHE/text-embeddings/<encoder>-<texts>.npy."""
    return Path(cache) / FOLDER / f"{encoder.digest[:24]}-{texts_digest(texts)[:40]}.npy"


def _read(path: Path, shape: tuple[int, int]) -> Tensor | None:
    """The cached array when it reads back as float32 of the expected shape, else None (to recompute)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(array, np.ndarray) or array.dtype != np.float32 or array.shape != shape:
        return None
    return torch.from_numpy(array)


def _write(path: Path, array: np.ndarray) -> None:
    """Write atomically (temp file + os.replace): a reader never sees half a file. A cache that cannot be
    written is a warning, not a failure: the embeddings are still right."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.stem, suffix=".tmp", delete=False) as f:
            tmp = f.name
            np.save(f, array)
        os.replace(tmp, path)
    except OSError as exc:
        warnings.warn(f"text embeddings not cached in {path.parent}: {exc}", stacklevel=3)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _compute(encoder: TextEmbedder, texts: list[str], batch_size: int, show: bool) -> Tensor:
    chunk = batch_size * CHUNK_BATCHES
    bar = progress_bar(total=len(texts), desc="embedding texts", unit="text") if show else None
    parts = []
    try:
        for start in range(0, len(texts), chunk):
            parts.append(encoder.embed(texts[start : start + chunk], batch_size=batch_size).float().cpu())
            if bar is not None:
                bar.update(len(parts[-1]))
    finally:
        if bar is not None:
            bar.close()
    return torch.cat(parts) if parts else torch.zeros(0, encoder.embedding_dim)


def cached_embeddings(
    encoder: TextEmbedder, texts: list[str], cache: Path | None, batch_size: int = 64, progress: bool = False
) -> Tensor:
    """FloatTensor [n, D] of the encoder's frozen embeddings of `texts`, read from CACHE/text-embeddings when
    computed before, else computed and written there. An unreadable or wrong-shaped file is recomputed and
    rewritten; `cache=None` computes without caching."""
    texts = list(texts)
    if cache is None:
        return _compute(encoder, texts, batch_size, progress)
    path = cache_path(encoder, texts, cache)
    found = _read(path, (len(texts), encoder.embedding_dim)) if path.exists() else None
    if found is not None:
        return found
    result = _compute(encoder, texts, batch_size, progress)
    _write(path, result.numpy().astype(np.float32, copy=False))
    return result


def _too_long(lengths: list[int], max_length: int) -> list[int]:
    return [i for i, n in enumerate(lengths) if n > max_length]


class EmbeddingFeaturizer:
    """Texts -> [n, D] frozen embeddings, cached on disk (`cache=None`: not cached)."""

    def __init__(self, encoder: TextEmbedder, cache: Path | None, batch_size: int = 64, progress: bool = False) -> None:
        self.encoder, self.cache, self.batch_size, self.progress = encoder, cache, batch_size, progress
        self.max_length: int = encoder.max_length

    def __call__(self, texts: Sequence[str]) -> Tensor:
        """Texts -> FloatTensor [n, D]."""
        return cached_embeddings(self.encoder, list(texts), self.cache, self.batch_size, self.progress)

    def too_long(self, texts: Sequence[str]) -> list[int]:
        """Indices of the texts with more tokens than the encoder's max_length (they would be truncated)."""
        return _too_long(self.encoder.lengths(texts), self.max_length)


class TokenFeaturizer:
    """Texts -> token ids for an encoder trained or fine-tuned on them: wraps a tokenizer (`__call__`, `lengths`,
    `max_length`: HashingTokenizer, SentenceTokenizer) or an encoder with `tokenize` and `lengths` (SentenceEncoder,
    whose own call is its forward pass)."""

    def __init__(self, tokenizer: object) -> None:
        tokenize = getattr(tokenizer, "tokenize", tokenizer)
        if not callable(tokenize) or not callable(getattr(tokenizer, "lengths", None)):
            raise TypeError(
                f"{type(tokenizer).__name__} is not a tokenizer (it needs __call__ or tokenize, and lengths)"
            )
        self.tokenizer = tokenizer
        self._tokenize: Callable[[Sequence[str]], Tensor] = tokenize
        self._lengths: Callable[[Sequence[str]], list[int]] = tokenizer.lengths  # type: ignore[attr-defined]
        self.max_length: int = int(tokenizer.max_length)  # type: ignore[attr-defined]

    def __call__(self, texts: Sequence[str]) -> Tensor:
        """Texts -> LongTensor of token ids ([n, L], or [n, 2, L] with an attention mask)."""
        return self._tokenize(list(texts))

    def too_long(self, texts: Sequence[str]) -> list[int]:
        """Indices of the texts with more tokens than max_length (they would be truncated)."""
        return _too_long(self._lengths(texts), self.max_length)
