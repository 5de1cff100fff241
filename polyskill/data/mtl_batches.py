"""Seeded training batches of a multi-task data set, with a position that checkpoints and resumes exactly."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .multitask import MultiTaskData


class MultiTaskBatches:
    """Batches of `data` for training.

    Dense data: epochs of a seeded permutation, `batch_size` examples a batch (the last partial batch of an
    epoch is dropped). Partitioned data: `task_batch` examples of every task a batch (drawn with replacement
    within each task, so small tasks are not exhausted), laid out task by task as `multitask_backward` expects.
    """

    def __init__(self, data: MultiTaskData, batch_size: int = 256, task_batch: int = 8, seed: int = 0) -> None:
        if batch_size < 1 or task_batch < 1:
            raise ValueError("batch_size and task_batch must be >= 1")
        if not data.partitioned and batch_size > len(data):
            raise ValueError(f"batch_size {batch_size} is larger than the {len(data)} training examples")
        counts = data.counts()
        if data.partitioned and bool((counts == 0).any()):
            empty = [data.tasks[i] for i in torch.nonzero(counts == 0).flatten().tolist()]
            raise ValueError(f"tasks without training examples: {', '.join(empty[:5])}")
        self.data, self.batch_size, self.task_batch = data, batch_size, task_batch
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch, self.position = 0, 0
        self._perm: Tensor | None = None
        if data.task is not None:  # partitioned: each example belongs to one task
            self._order = torch.argsort(data.task, stable=True)
            self._counts = counts
            self._starts = torch.cumsum(counts, 0) - counts

    @property
    def partitioned(self) -> bool:
        return self.data.partitioned

    def _indices(self) -> Tensor:
        if self.data.partitioned:
            u = torch.rand(len(self._counts), self.task_batch, generator=self.generator)
            local = (u * self._counts[:, None]).long().clamp_max(self._counts[:, None] - 1)
            return self._order[(self._starts[:, None] + local).flatten()]
        if self._perm is None or self.position + self.batch_size > len(self.data):
            if self._perm is not None:
                self.epoch += 1
            self._perm = torch.randperm(len(self.data), generator=self.generator)
            self.position = 0
        index = self._perm[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return index

    def sample(self) -> tuple[Tensor, Tensor]:
        """The next batch (x, y): dense y is [B, T]; partitioned y is [T * task_batch], task by task."""
        index = self._indices()
        return self.data.x[index], self.data.y[index]

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "position": self.position,
            "perm": self._perm,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.epoch, self.position, self._perm = state["epoch"], state["position"], state["perm"]
