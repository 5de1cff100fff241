"""The multi-task trainer: the episodic trainer's loop (checkpoints, resume, validation, time budget) over
multi-task batches, validated by the mean task score (accuracy, or explained variance for regression)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.mtl_batches import MultiTaskBatches
from ..data.multitask import MultiTaskData
from ..distributed import SINGLE, DistContext
from ..mtl.learner import MultiTaskLearner
from ..mtl.metrics import evaluate_multitask
from .episodic import FitConfig, RecordSink, Trainer


def validation_score(overall: dict[str, float]) -> float:
    """The figure a run is selected on: mean accuracy, else explained variance."""
    return overall["accuracy"] if "accuracy" in overall else overall["explained_variance"]


class MultiTaskTrainer(Trainer):
    """Trains a `MultiTaskLearner` on `train` batches; `val` is a held-out `MultiTaskData` split.

    On several processes `train` is this rank's share of every global batch; the learner's backward leaves the
    global batch's gradients on every rank (all-reducing what its aggregator needs), so the generic averaging
    is skipped. Every rank validates on the whole split (the parameters are the same, and so is the score).
    """

    val_metric = "val_score"
    averages_own_gradients = True
    splits_meta_batch = False
    syncs_batch_norm = False  # per-task gradients run under vmap, where no collective can: statistics per rank

    def __init__(self, learner: MultiTaskLearner, train: MultiTaskBatches, config: FitConfig,
                 out: str | Path | None = None, val: MultiTaskData | None = None, progress: bool = True,
                 sinks: list[RecordSink] | None = None, dist: DistContext = SINGLE) -> None:
        super().__init__(learner, train, config, out=out, val=val, progress=progress,  # type: ignore[arg-type]
                         sinks=sinks, dist=dist)

    def train_step(self) -> dict[str, torch.Tensor]:
        x, y = self.train.sample()
        return self.algo.backward(x.to(self.device), y.to(self.device), dist=self.dist)

    def validate(self) -> float:
        return validation_score(evaluate_multitask(self.algo.model, self.val, "val").overall)

    def format_val(self, value: float) -> str:
        return f"score {value:.4f}"
