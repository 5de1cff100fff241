"""Tasks seen through their data: the tasks of a partitioned multi-task data set (each example belongs to one
task, as each student belongs to a school) as few-shot regression tasks for meta-learners.

A training task is one task's examples, `shot` of them as support and `query` others as query, drawn from the
tasks that have at least shot + query examples. Targets are standardised with the mean and standard deviation
of the training split (`scale`), so that inner learning rates mean the same on every data set.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError
from .episodes import TaskBatch
from .multitask import MultiTaskData
from .task_stream import TaskStream


def target_scale(data: MultiTaskData) -> tuple[float, float]:
    """Mean and standard deviation of the targets of `data` (the training split's fix the scale)."""
    std = float(data.y.double().std()) if len(data) > 1 else 1.0
    return float(data.y.double().mean()), std if std > 0 else 1.0


class TaskExamples(TaskStream):
    """Few-shot regression tasks from the tasks of `data`: x [B, K, ...], standardised targets y [B, K, 1]."""

    def __init__(
        self, data: MultiTaskData, shot: int, query: int, seed: int = 0, scale: tuple[float, float] | None = None
    ) -> None:
        super().__init__(shot, query, seed)
        if data.task is None:  # not partitioned
            raise ConfigError(
                "meta-learning over tasks needs a data set whose examples each belong to one task "
                "(School; Parkinsons with data.tasks: subjects)"
            )
        if any(data.classes):
            raise ConfigError("meta-learning over a multi-task data set's tasks supports regression tasks only")
        self.data = data
        self.mean, self.std = scale if scale is not None else target_scale(data)
        self.rows = [torch.nonzero(data.task == t).flatten() for t in range(len(data.tasks))]
        self.eligible = [t for t, rows in enumerate(self.rows) if len(rows) >= shot + query]
        if not self.eligible:
            largest = max(len(rows) for rows in self.rows)
            raise ConfigError(f"no task has {shot + query} examples (shot + query); the largest has {largest}")

    def targets(self, rows: Tensor) -> Tensor:
        """Standardised targets [len(rows), 1] of the examples at `rows`."""
        return ((self.data.y[rows] - self.mean) / self.std).unsqueeze(-1)

    def _draw(self, tasks: int, generator: torch.Generator) -> TaskBatch:
        picks = torch.randint(len(self.eligible), (tasks,), generator=generator).tolist()
        need = self.shot + self.query
        index = torch.stack(
            [
                self.rows[self.eligible[p]][
                    torch.randperm(len(self.rows[self.eligible[p]]), generator=generator)[:need]
                ]
                for p in picks
            ]
        )
        x, y = self.data.x[index], self.targets(index.flatten()).view(tasks, need, 1)
        s = self.shot
        return TaskBatch(x[:, :s], y[:, :s], x[:, s:], y[:, s:], way=1)
