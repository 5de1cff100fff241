"""What the trainer needs of a validation protocol, and how it names validation records.

The protocols themselves live in `polyskill.eval` (a layer above training); the trainer only sees this shape:
a metric name, its direction, and `evaluate(model, dist)` returning something with a `value`.
"""

from __future__ import annotations

from typing import Protocol

from torch import nn

from ..distributed import DistContext


class Scored(Protocol):
    """A result with one headline figure."""

    @property
    def value(self) -> float: ...


class Validation(Protocol):
    """A validation protocol: the run keeps the checkpoint whose `value` is best in `higher_is_better`'s sense."""

    @property
    def metric(self) -> str: ...

    @property
    def higher_is_better(self) -> bool: ...

    def evaluate(self, model: nn.Module, dist: DistContext) -> Scored: ...


def validation_key(metric: str) -> str:
    """The metrics.jsonl key of a validation record of `metric` (val_accuracy, val_mse, val_score, ...)."""
    return f"val_{metric}"


def is_better(value: float, best: float | None, higher_is_better: bool) -> bool:
    """Whether `value` beats `best` (anything beats None; NaN beats nothing)."""
    if value != value:
        return False
    if best is None:
        return True
    return value > best if higher_is_better else value < best
