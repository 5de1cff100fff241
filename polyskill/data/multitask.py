"""A multi-task data set split: inputs with one target per task, or examples that each belong to one task."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class MultiTaskData:
    """Inputs `x` [N, ...] (float32) and targets for `tasks`.

    Dense (every example labelled for every task, MultiFashion, Parkinsons motor/total): `y` is [N, T] and
    `task` is None. Partitioned (each example belongs to one task, School: a student belongs to a school): `y` is
    [N] and `task` [N] holds each example's task index. `classes[t]` is the class count of a classification task,
    0 for a regression task (int64 class labels, float32 regression targets; a dense `y` of mixed kinds is float
    and class labels are cast back by the loss).
    """

    tasks: tuple[str, ...]
    x: Tensor
    y: Tensor
    classes: tuple[int, ...]
    task: Tensor | None = None

    def __post_init__(self) -> None:
        n, t = len(self.x), len(self.tasks)
        if len(self.classes) != t:
            raise ValueError(f"classes has {len(self.classes)} entries for {t} tasks")
        if len(self.y) != n:
            raise ValueError(f"x has {n} examples but y has {len(self.y)}")
        if self.task is None and (self.y.dim() != 2 or self.y.shape[1] != t):
            raise ValueError(f"dense targets must be [N, {t}], got {tuple(self.y.shape)}")
        if self.task is not None and (self.y.dim() != 1 or self.task.shape != (n,)):
            raise ValueError("partitioned data needs y [N] and task [N]")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def partitioned(self) -> bool:
        return self.task is not None

    def subset(self, index: Tensor) -> MultiTaskData:
        """The examples at `index` (a LongTensor), same tasks."""
        return MultiTaskData(
            self.tasks, self.x[index], self.y[index], self.classes, None if self.task is None else self.task[index]
        )

    def counts(self) -> Tensor:
        """Examples per task ([T]); every task has all N examples when dense."""
        if self.task is None:
            return torch.full((len(self.tasks),), len(self), dtype=torch.long)
        return torch.bincount(self.task, minlength=len(self.tasks))
