"""One multi-task backward pass: a strategy measures the per-task gradients (see `strategies`), and `combine`
weights them and leaves the step's gradients in `.grad`. The optimiser step is the caller's.

Loss weightings (EW, UW, DWA, RLW) backpropagate `sum_t w_t L_t` once. Gradient aggregators get the per-task
gradients of the shared parameters (or, with `rep_grad`, of the shared representation, as MGDA-UB does), turn
their Gram matrix into weights, and the shared parameters' `.grad` is `sum_t w_t g_t`; task-specific parameters get
the gradient of their own task's loss.

On several processes (`reduction`), each holds its share of the global batch and every loss is a mean, so the
global batch's per-task gradients are the processes' mean. What the weights read (the per-task gradient matrix
[T, P] with the losses [T]; with `rep_grad` the Gram matrix [T, T]; for loss weightings the losses) is averaged
before weighting, so every process computes the same weights and the same shared direction; the remaining
gradients (task-specific parameters, the penalty's, the weighting's own, and those of a weighted loss or of the
representation's backward pass) are then averaged. Either way `.grad` ends identical on every process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import MultiTaskModel, Weighting
from .reduction import LOCAL, Reduction
from .strategies import task_gradients_of
from .task_gradients import TaskGradients, accumulate


@dataclass
class StepInfo:
    """What one step measured: per-task losses [T], the weights used [T], and the Gram matrix of the per-task
    gradients [T, T] when they were computed (None for a plain weighted-loss step)."""

    losses: Tensor
    weights: Tensor
    gram: Tensor | None = None


def combine(
    model: MultiTaskModel, weighting: Weighting, grads: TaskGradients, reduction: Reduction = LOCAL
) -> StepInfo:
    """Weight what a strategy measured and write the step's gradients into `.grad`: the global batch's weights,
    the weighted combination, each task's own gradients, the architecture's penalty and the weighting's
    regulariser; then average over the processes every gradient that is not the global batch's yet."""
    weights, gram, losses = grads.weigh(weighting, reduction)
    done = {id(p) for p in grads.write(weights)}
    accumulate(grads.heads)
    extra = [e for e in (model.penalty(), weighting.regularizer(losses)) if e is not None]
    if extra:
        torch.stack([e.reshape(()) for e in extra]).sum().backward()
    reduction.average_gradients([p for p in [*model.parameters(), *weighting.parameters()] if id(p) not in done])
    return StepInfo(losses, weights.detach(), gram)


def multitask_backward(
    model: MultiTaskModel,
    weighting: Weighting,
    x: Tensor,
    y: Tensor,
    classes: tuple[int, ...],
    *,
    partitioned: bool = False,
    rep_grad: bool = False,
    want_gram: bool = False,
    reduction: Reduction = LOCAL,
) -> StepInfo:
    """Compute the step's gradients into `.grad` (which the caller has zeroed).

    `partitioned`: the batch is laid out task by task (`len(x) = T * n`, rows [i*n, (i+1)*n) are task i's)
    and each task's loss reads only its rows; otherwise `y` is [B, T]. `want_gram` asks a loss weighting to
    compute the per-task gradients anyway (for task-affinity tracking); gradient aggregators always do.
    `reduction`: this process's batch is its share of the global one; `.grad`, the losses, the weights and the
    Gram matrix returned are the global batch's, the same on every process (see the module's docstring).
    """
    grads = task_gradients_of(
        model, weighting, x, y, classes, partitioned=partitioned, rep_grad=rep_grad, want_gram=want_gram
    )
    return combine(model, weighting, grads, reduction)
