"""Texts grouped by class, the text counterpart of a ClassDataset, and the seeded K-shot draw the text protocols
use (BANKING77's and CLINC150's K examples per intent)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from .classes import ClassDataset, draw_indices


@dataclass
class TextClasses:
    """Texts grouped by class: texts[c] is the list of examples of class names[c]."""

    texts: list[list[str]]
    names: list[str]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.names):
            raise DataError(f"{len(self.names)} class names for {len(self.texts)} lists of texts")
        repeated = [name for name, n in Counter(self.names).items() if n > 1]
        if repeated:
            raise DataError(f"class names must be unique; repeated: {', '.join(sorted(set(repeated)))}")
        for name, texts in zip(self.names, self.texts, strict=True):
            if not texts:
                raise DataError(f"class {name!r} has no example")
            if not all(isinstance(t, str) for t in texts):
                raise DataError(f"class {name!r} holds something that is not a string")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def num_examples(self) -> int:
        return sum(len(t) for t in self.texts)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"TextClasses({self.num_classes} classes, {self.num_examples} examples)"

    def subset(self, classes: Sequence[int]) -> TextClasses:
        """The classes at the given indices, in that order."""
        index = [int(c) for c in classes]
        return TextClasses([list(self.texts[c]) for c in index], [self.names[c] for c in index])

    def flat(self) -> tuple[list[str], np.ndarray]:
        """All texts, class after class, and each one's class index (int64)."""
        texts = [t for group in self.texts for t in group]
        labels = np.repeat(np.arange(self.num_classes, dtype=np.int64), [len(g) for g in self.texts])
        return texts, labels

    def encode(self, featurize: Callable[[list[str]], Tensor]) -> ClassDataset:
        """Call featurize ONCE on all texts (flat order; so a cache sees one list), then pad into a ClassDataset
        [C, max count, *example shape] with `counts` (padding slots zero). Works for float vectors [n, D] and
        integer token ids [n, L] or [n, 2, L] alike (keep the dtype)."""
        texts, _ = self.flat()
        features = torch.as_tensor(featurize(texts))
        if features.dim() < 1 or features.shape[0] != len(texts):
            raise DataError(f"the text encoder returned {tuple(features.shape)} for {len(texts)} texts")
        counts = torch.tensor([len(g) for g in self.texts], dtype=torch.long)
        width = int(counts.max()) if len(counts) else 0
        data = features.new_zeros((self.num_classes, width, *features.shape[1:]))
        start = 0
        for c, n in enumerate(counts.tolist()):
            data[c, :n] = features[start : start + n]
            start += n
        return ClassDataset(data, list(self.names), counts)


def draw_shots(classes: TextClasses, shot: int, seed: int) -> TextClasses:
    """K examples of every class, drawn without replacement by a numpy Generator(seed) (same seed -> same draw);
    a class with fewer than K examples is a DataError naming it."""
    if shot < 1:
        raise ConfigError(f"shot must be at least 1, got {shot}")
    short = [f"{name} ({len(t)})" for name, t in zip(classes.names, classes.texts, strict=True) if len(t) < shot]
    if short:
        more = f" and {len(short) - 10} more" if len(short) > 10 else ""
        raise DataError(f"cannot draw {shot} examples from class(es) with fewer: {', '.join(short[:10])}{more}")
    rows = draw_indices([len(texts) for texts in classes.texts], shot, seed)
    drawn = [[texts[i] for i in index] for texts, index in zip(classes.texts, rows, strict=True)]
    return TextClasses(drawn, list(classes.names))
