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
        """One batch (and, for a weighting that `needs_meta_batch`, the next one as its meta batch)."""
        x, y = (t.to(self.device) for t in self.train.sample())
        meta = None
        if self.algo.aggregator.needs_meta_batch:
            meta = tuple(t.to(self.device) for t in self.train.sample())
        self.batch = (x, y)
        return self.algo.backward(x, y, reduction=RankReduction(self.dist), meta=meta)

    def after_optimizer_step(self) -> None:
        """The step's batch again, for a weighting that reads its losses under the new parameters (FAMO)."""
        self.algo.after_step(*self.batch, reduction=RankReduction(self.dist))
