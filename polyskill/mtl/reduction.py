"""What a multi-task step needs from the processes it runs on: means over them, nothing more. A single process is
`LOCAL`; training on several passes an implementation that all-reduces (see `polyskill.distributed`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from torch import Tensor


class Reduction(Protocol):
    """Means over the processes that each hold a share of the global batch (every loss is a batch mean, so the
    global batch's gradients and losses are the processes' means)."""

    @property
    def world(self) -> int:
        """How many processes share the batch."""
        ...

    def mean(self, *tensors: Tensor) -> list[Tensor]:
        """The detached `tensors` averaged over the processes, the same on each."""
        ...

    def average_gradients(self, params: Iterable[Tensor]) -> None:
        """Replace every `.grad` of `params` (those that have one) with its mean over the processes."""
        ...


class LocalReduction:
    """One process: the mean of a tensor is itself (detached), and gradients are already the batch's."""

    @property
    def world(self) -> int:
        return 1

    def mean(self, *tensors: Tensor) -> list[Tensor]:
        return [t.detach() for t in tensors]

    def average_gradients(self, params: Iterable[Tensor]) -> None:
        return None


LOCAL: Reduction = LocalReduction()
