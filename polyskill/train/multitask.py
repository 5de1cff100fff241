"""The multi-task trainer: the episodic trainer's loop (checkpoints, resume, validation, time budget) over
multi-task batches; validation is whatever protocol it is given (the multi-task kind gives the split's metrics)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.mtl_batches import MultiTaskBatches
from ..distributed import SINGLE, DistContext
from ..distributed.reduction import RankReduction
from ..mtl.learner import MultiTaskLearner
from ..records import RecordSink
from .episodic import FitConfig, Trainer
from .validation import Validation


class MultiTaskTrainer(Trainer):
    """Trains a `MultiTaskLearner` on `train` batches; `val` is a held-out `MultiTaskData` split.

    On several processes `train` is this rank's share of every global batch; the learner's backward leaves the
    global batch's gradients on every rank (all-reducing what its aggregator needs), so the generic averaging
    is skipped. Every rank validates on the whole split (the parameters are the same, and so is the score).
    """

    averages_own_gradients = True
    splits_meta_batch = False
    syncs_batch_norm = False  # per-task gradients run under vmap, where no collective can: statistics per rank

    def __init__(
        self,
        learner: MultiTaskLearner,
        train: MultiTaskBatches,
        config: FitConfig,
        out: str | Path | None = None,
        val: Validation | None = None,
        progress: bool = True,
        sinks: list[RecordSink] | None = None,
        dist: DistContext = SINGLE,
    ) -> None:
        super().__init__(
            learner,
            train,
            config,
            out=out,
            val=val,
            progress=progress,
            sinks=sinks,
            dist=dist,
        )

    def train_step(self) -> dict[str, torch.Tensor]:
        x, y = self.train.sample()
        return self.algo.backward(x.to(self.device), y.to(self.device), reduction=RankReduction(self.dist))
