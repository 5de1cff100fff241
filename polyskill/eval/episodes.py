"""Scoring a learner on fixed tasks: each task's query predictions scored against its targets, one value per task."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

import torch
from torch import Tensor

from ..data.episodes import TaskBatch
from ..errors import RunError
from ..meta.base import FewShotAlgorithm
from ..progress import progress

Score = Callable[[Tensor, Tensor], Tensor]
"""(predictions [B, M, ...], query targets [B, M, ...]) -> one value per task [B]."""


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of correct predictions along the last axis of logits, averaged over the last label axis."""
    return (logits.argmax(-1) == labels).float().mean(-1)


def usable(outputs: Tensor) -> bool:
    """Whether predictions [..., classes or outputs] can be scored: no nan, no +inf, and no row whose every score
    is -inf (a -inf score alone is a class ruled out; a row of them rules out every class)."""
    return not (outputs.isnan().any() or outputs.isposinf().any() or (outputs.amax(-1) == float("-inf")).any())


def check_usable(outputs: Tensor) -> Tensor:
    """`outputs`, or a RunError when they cannot be scored (`usable`): a nan or an overflow is not chance accuracy."""
    if not usable(outputs):
        raise RunError(
            "the learner's predictions are not finite (nan or inf), so no accuracy can be measured: an option of "
            "the learner (a temperature, a rate, a weight) is out of the range its numbers can hold"
        )
    return outputs


def squared_errors(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error of each task: outputs and targets [B, M, ...] -> [B]."""
    return (outputs.reshape(targets.shape) - targets).pow(2).flatten(1).mean(1)


def episode_scores(
    algo: FewShotAlgorithm,
    batches: Iterable[TaskBatch],
    score: Score,
    context: Callable[[], AbstractContextManager] | None = None,
    total: int | None = None,
    steps: int | None = None,
) -> Tensor:
    """score(predictions, query targets) of each task in `batches`, [E], with the algorithm in eval mode (mode
    restored after), predictions made with `steps` adaptation steps (None: the learner's own) under `context`
    (default: no_grad); a progress bar counts the `total` tasks."""
    was_training = algo.training
    algo.eval()
    results = []
    running, count = 0.0, 0
    bar = progress(total=total, desc="evaluate", unit="task")
    try:
        for batch in batches:
            with context() if context else torch.no_grad():
                outputs = algo.predict(batch, steps=steps) if steps is not None else algo.predict(batch)
            outputs = check_usable(outputs.float())
            results.append(score(outputs, batch.query_y))
            if not bar.disable:  # the running mean costs a device sync per batch: only when it is shown
                running, count = running + float(results[-1].sum()), count + len(results[-1])
                bar.update(len(results[-1]))
                bar.set_postfix(mean=f"{running / count:.4f}", refresh=False)
    finally:
        bar.close()
        algo.train(was_training)
    return torch.cat(results) if results else torch.empty(0)
