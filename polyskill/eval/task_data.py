"""Multi-task evaluation of a meta-learner: every task is learned from all of its training examples and
predicted on its examples of the evaluation split, with the multi-task metrics (pooled explained variance for
School), so that meta-learners and multi-task models are compared on the same numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..data.episodes import Support
from ..data.multitask import MultiTaskData
from ..data.task_examples import TaskExamples
from ..distributed import SINGLE, DistContext
from ..meta.base import FewShotAlgorithm
from ..progress import progress
from .multitask import regression_metrics
from .protocol import EvalProtocol
from .result import Result


@dataclass(frozen=True)
class TaskDataResult(Result):
    """Pooled metrics over every evaluated example, in the data's own units."""

    protocol: ClassVar[str] = "task_data"
    metric: ClassVar[str] = "explained_variance"
    measured: ClassVar[tuple[str, ...]] = ("tasks", "examples", "explained_variance", "rmse", "mae")

    split: str
    tasks: int
    examples: int
    steps: int | None
    explained_variance: float
    rmse: float
    mae: float
    weights: str | None = None

    def __str__(self) -> str:
        steps = f", {self.steps} adaptation steps" if self.steps is not None else ""
        return (
            f"each of {self.tasks} tasks learned from its training examples{steps}: explained variance "
            f"{100 * self.explained_variance:.2f}%, RMSE {self.rmse:.4f} ({self.examples} {self.split} examples)"
        )

    @property
    def label(self) -> str:
        steps = f"@{self.steps}" if self.steps is not None else ""
        return f"{self.tasks} tasks{steps}"

    def formatted(self) -> str:
        return f"EV {100 * self.explained_variance:.2f}%"


def adapt_each_task(
    algo: FewShotAlgorithm, train: TaskExamples, evaluate: MultiTaskData, split: str = "test", steps: int | None = None
) -> TaskDataResult:
    """Adapt `algo` to each task on all of its examples in `train` (with `steps` adaptation steps; None: the
    learner's own) and predict its examples in `evaluate` (the algorithm in eval mode, restored after)."""
    if evaluate.task is None:
        raise ValueError("each task is learned from its own examples: the data must be partitioned by task")
    predictions, truths = [], []
    was_training = algo.training
    algo.eval()
    try:
        for t, rows in enumerate(progress(train.rows, desc="adapt to each task", unit="task")):
            wanted = torch.nonzero(evaluate.task == t).flatten()
            if len(wanted) == 0 or len(rows) == 0:
                continue
            with torch.no_grad():
                support = Support(train.data.x[rows], train.targets(rows), 1)
                predictor = algo.adapt(support, steps=steps) if steps is not None else algo.adapt(support)
                out = predictor(evaluate.x[wanted]).reshape(-1).double()
            predictions.append(out * train.std + train.mean)
            truths.append(evaluate.y[wanted].double())
    finally:
        algo.train(was_training)
    metrics = regression_metrics(torch.cat(predictions), torch.cat(truths))
    return TaskDataResult(
        split,
        len(predictions),
        int(metrics["n"]),
        steps,
        metrics["explained_variance"],
        metrics["rmse"],
        metrics["mae"],
    )


@dataclass
class EachTaskFit(EvalProtocol):
    """Each task of a partitioned multi-task data set learned from its `train` examples, scored on `data`."""

    result_type: ClassVar[type[Result]] = TaskDataResult

    train: TaskExamples
    data: MultiTaskData
    split: str = "test"
    steps: int | None = None

    def evaluate(self, model: nn.Module, dist: DistContext = SINGLE) -> Result:
        return adapt_each_task(model, self.train, self.data, self.split, self.steps)  # type: ignore[arg-type]


__all__ = ["EachTaskFit", "TaskDataResult", "adapt_each_task"]
