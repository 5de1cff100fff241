"""The multi-task trainer: the episodic trainer's loop (checkpoints, resume, validation, time budget) over
multi-task batches, validated by the mean task score (accuracy, or explained variance for regression)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.mtl_batches import MultiTaskBatches
from ..data.multitask import MultiTaskData
from ..mtl.learner import MultiTaskLearner
from ..mtl.metrics import evaluate_multitask
from .episodic import FitConfig, RecordSink, Trainer


def validation_score(overall: dict[str, float]) -> float:
    """The figure a run is selected on: mean accuracy, else explained variance."""
    return overall["accuracy"] if "accuracy" in overall else overall["explained_variance"]


class MultiTaskTrainer(Trainer):
    """Trains a `MultiTaskLearner` on `train` batches; `val` is a held-out `MultiTaskData` split."""

    val_metric = "val_score"

    def __init__(self, learner: MultiTaskLearner, train: MultiTaskBatches, config: FitConfig,
                 out: str | Path | None = None, val: MultiTaskData | None = None, progress: bool = True,
                 sinks: list[RecordSink] | None = None) -> None:
        super().__init__(learner, train, config, out=out, val=val, progress=progress,  # type: ignore[arg-type]
                         sinks=sinks)

    def train_step(self) -> dict[str, torch.Tensor]:
        x, y = self.train.sample()
        return self.algo.backward(x.to(self.device), y.to(self.device))

    def validate(self) -> float:
        return validation_score(evaluate_multitask(self.algo.model, self.val, "val").overall)

    def format_val(self, value: float) -> str:
        return f"score {value:.4f}"
