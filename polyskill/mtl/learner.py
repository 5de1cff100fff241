"""A multi-task learner: an architecture, an aggregator and the bookkeeping of a step (metrics, affinity)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .affinity import AffinityTracker, lookahead_affinity
from .base import BilevelWeighting, MultiTaskModel, Weighting
from .gradients import task_gradients
from .losses import dense_losses, grouped_losses
from .reduction import LOCAL, Reduction
from .step import multitask_backward

PER_TASK_LOG_LIMIT = 16  # log each task's loss and weight when there are at most this many tasks


class MultiTaskLearner(nn.Module):
    """What the trainer optimises: the model's and the weighting's parameters (UW's log-variances).

    `affinity_every` > 0 measures the lookahead affinity every that many steps (and, for loss weightings, the
    gradient cosines, which gradient aggregators get at every step for free), with an SGD step of `lookahead_lr`.
    """

    steps: Tensor

    def __init__(
        self,
        model: MultiTaskModel,
        aggregator: Weighting,
        classes: tuple[int, ...],
        *,
        partitioned: bool = False,
        rep_grad: bool = False,
        affinity_every: int = 0,
        lookahead_lr: float = 1e-3,
    ) -> None:
        super().__init__()
        if len(classes) != len(model.tasks):
            raise ValueError(f"{len(classes)} class counts for {len(model.tasks)} tasks")
        if affinity_every < 0 or lookahead_lr <= 0:
            raise ValueError("affinity_every must be >= 0 and lookahead_lr > 0")
        self.model, self.aggregator = model, aggregator
        self.classes, self.partitioned, self.rep_grad = tuple(classes), partitioned, rep_grad
        self.affinity_every, self.lookahead_lr = affinity_every, lookahead_lr
        self.affinity = AffinityTracker(len(model.tasks))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.model.tasks

    def losses(self, outputs: dict[str, Tensor], y: Tensor) -> Tensor:
        """[T] losses of a batch's outputs."""
        return (grouped_losses if self.partitioned else dense_losses)(outputs, y, self.tasks, self.classes)

    def backward(
        self, x: Tensor, y: Tensor, reduction: Reduction = LOCAL, meta: tuple[Tensor, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """One step's gradients into `.grad`; returns detached metrics (total loss, and per task when few).

        With a `reduction` over several processes, (x, y) is this process's share of the global batch; the
        gradients left in `.grad`, the metrics and the affinity measured are the global batch's, identical on
        every process (nothing is left to average). `meta` is the second batch a bilevel weighting
        (`needs_meta_batch`) trains its weights on first.
        """
        if isinstance(self.aggregator, BilevelWeighting):
            if meta is None:
                raise ValueError(f"{type(self.aggregator).__name__} needs a meta batch every step")
            self._meta_step(x, y, *meta)
        measure = self.affinity_every > 0 and int(self.steps) % self.affinity_every == 0
        info = multitask_backward(
            self.model,
            self.aggregator,
            x,
            y,
            self.classes,
            partitioned=self.partitioned,
            rep_grad=self.rep_grad,
            want_gram=measure,
            reduction=reduction,
        )
        if info.gram is not None and not self.rep_grad:
            self.affinity.add_gram(info.gram)
        if measure:
            self.affinity.add_lookahead(self._lookahead(x, y, reduction))
        self.steps += 1
        metrics = {"loss": info.losses.sum()}
        if len(self.tasks) <= PER_TASK_LOG_LIMIT:
            for i, task in enumerate(self.tasks):
                metrics[f"loss_{task}"] = info.losses[i]
                metrics[f"weight_{task}"] = info.weights[i].detach().float()
        return metrics

    def _meta_step(self, x: Tensor, y: Tensor, meta_x: Tensor, meta_y: Tensor) -> None:
        """The bilevel weighting's update, given the model as a pure function of its parameters."""
        assert isinstance(self.aggregator, BilevelWeighting)
        model = self.model
        params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
        frozen = {k: v for k, v in model.named_parameters() if not v.requires_grad}
        buffers = dict(model.named_buffers())
        shared_ids = {id(p) for p in model.shared_parameters()}
        shared = [k for k, p in model.named_parameters() if id(p) in shared_ids and k in params]

        def losses_on(inputs: Tensor, targets: Tensor) -> Callable[[dict[str, Tensor]], Tensor]:
            return lambda p: self.losses(functional_call(model, ({**p, **frozen}, buffers), (inputs,)), targets)

        meta_losses = losses_on(meta_x, meta_y)
        with torch.enable_grad():
            self.aggregator.meta_step(params, shared, losses_on(x, y), lambda p: meta_losses(p).sum())

    def after_step(self, x: Tensor, y: Tensor, reduction: Reduction = LOCAL) -> None:
        """The end of a training step, once the optimiser has stepped: a weighting that `needs_losses_after_step`
        gets the batch's global losses under the new parameters (no gradient), then the model's `step_done`."""
        if self.aggregator.needs_losses_after_step:
            with torch.no_grad():
                (losses,) = reduction.mean(self.losses(self.model(x), y))
            self.aggregator.after_step(losses.detach())
        self.model.step_done()

    def _lookahead(self, x: Tensor, y: Tensor, reduction: Reduction) -> Tensor:
        """The lookahead affinity of the global batch: its per-task gradients, and every loss before and after a
        step, are the processes' means (one all-reduce of T * (P + 1) values, then T of T values)."""
        shared: list[Tensor] = [p for p in self.model.shared_parameters() if p.requires_grad]
        if not shared:
            return torch.zeros(len(self.tasks), len(self.tasks))
        with torch.enable_grad():
            losses = self.losses(self.model(x), y)
            jac, mean_losses = reduction.mean(task_gradients(losses, shared, retain_graph=False), losses)
        return lookahead_affinity(
            self.model,
            shared,
            jac,
            self.lookahead_lr,
            lambda out: reduction.mean(self.losses(out, y))[0],
            x,
            mean_losses,
        )

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.model(x)
