"""A class-indexed in-memory image set: one tensor [classes, examples, *shape], the unit episodes are drawn from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError


@dataclass
class ClassDataset:
    """Examples grouped by class.

    `data` is [C, E, *shape] (uint8 images are scaled to [0, 1] when episodes are drawn); `counts[c]` says
    how many of the E slots class c really fills, so classes of different sizes share one padded tensor.
    """

    data: Tensor
    names: list[str]
    counts: Tensor = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.data.dim() < 2:
            raise DataError(
                f"a class dataset needs a [classes, examples, ...] tensor, got shape {tuple(self.data.shape)}"
            )
        if len(self.names) != self.data.shape[0]:
            raise DataError(f"{len(self.names)} class names for {self.data.shape[0]} classes")
        if self.counts is None:
            self.counts = torch.full((self.data.shape[0],), self.data.shape[1], dtype=torch.long)
        self.counts = torch.as_tensor(self.counts, dtype=torch.long)
        if not self.data.is_contiguous():
            self.data = self.data.contiguous()

    def __len__(self) -> int:
        return self.data.shape[0]

    @property
    def num_classes(self) -> int:
        return self.data.shape[0]

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[2:])

    @property
    def num_examples(self) -> int:
        return int(self.counts.sum())

    def subset(self, classes: Sequence[int] | Tensor) -> ClassDataset:
        """The dataset restricted to the given class indices, in that order."""
        index = torch.as_tensor(classes, dtype=torch.long)
        return ClassDataset(self.data[index], [self.names[i] for i in index.tolist()], self.counts[index])

    def __repr__(self) -> str:
        return (
            f"ClassDataset({self.num_classes} classes, {self.num_examples} examples, "
            f"shape {self.example_shape}, {self.data.dtype})"
        )


def draw_indices(counts: Sequence[int], shot: int, seed: int) -> list[np.ndarray]:
    """`shot` distinct indices below each class's count, drawn class after class by numpy's Generator(seed): the
    K-shot draw of the whole-test-set protocol and of `draw_shots` alike, so both pick the same examples."""
    rng = np.random.default_rng(seed)
    return [rng.choice(int(n), size=shot, replace=False) for n in counts]


def to_float(x: Tensor) -> Tensor:
    """uint8 pixels to float32 in [0, 1]; float data passes through."""
    return x.to(torch.float32).mul_(1.0 / 255.0) if x.dtype == torch.uint8 else x
