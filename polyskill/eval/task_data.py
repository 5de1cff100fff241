"""Multi-task evaluation of a meta-learner: every task is learned from all of its training examples and
predicted on its examples of the evaluation split, with the multi-task metrics (pooled explained variance for
School), so that meta-learners and multi-task models are compared on the same numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..data.episodes import Support
from ..data.multitask import MultiTaskData
from ..data.task_examples import TaskExamples
from ..meta.base import FewShotAlgorithm
from ..mtl.metrics import regression_metrics
from ..progress import progress


@dataclass(frozen=True)
class TaskDataResult:
    """Pooled metrics over every evaluated example, in the data's own units."""

    split: str
    tasks: int
    examples: int
    steps: int | None
    explained_variance: float
    rmse: float
    mae: float

    def __str__(self) -> str:
        steps = f", {self.steps} adaptation steps" if self.steps is not None else ""
        return (f"each of {self.tasks} tasks learned from its training examples{steps}: explained variance "
                f"{100 * self.explained_variance:.2f}%, RMSE {self.rmse:.4f} ({self.examples} {self.split} examples)")

    def to_dict(self) -> dict:
        return asdict(self)


def adapt_each_task(algo: FewShotAlgorithm, train: TaskExamples, evaluate: MultiTaskData, split: str = "test",
                    steps: int | None = None) -> TaskDataResult:
    """Adapt `algo` to each task on all of its examples in `train` and predict its examples in `evaluate`
    (the algorithm in eval mode, restored after)."""
    predictions, truths = [], []
    was_training = algo.training
    algo.eval()
    try:
        for t, rows in enumerate(progress(train.rows, desc="adapt to each task", unit="task")):
            wanted = torch.nonzero(evaluate.task == t).flatten()
            if len(wanted) == 0 or len(rows) == 0:
                continue
            with torch.no_grad():
                predictor = algo.adapt(Support(train.data.x[rows], train.targets(rows), 1))
                out = predictor(evaluate.x[wanted]).reshape(-1).double()
            predictions.append(out * train.std + train.mean)
            truths.append(evaluate.y[wanted].double())
    finally:
        algo.train(was_training)
    metrics = regression_metrics(torch.cat(predictions), torch.cat(truths))
    return TaskDataResult(split, len(predictions), int(metrics["n"]), steps, metrics["explained_variance"],
                          metrics["rmse"], metrics["mae"])
