"""The interface every few-shot algorithm implements, and the training metrics of a batch of tasks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ..checked import AtMost
from ..data.episodes import Support, TaskBatch
from .contract import Contract

#: the most steps (or iterations) one adaptation to a task may take: 100 times the longest a published method
#: takes (TIM's 1000); a larger count would keep one episode running for hours
MAX_ADAPTATION_STEPS = 100_000
Steps = Annotated[int, AtMost(MAX_ADAPTATION_STEPS, "steps of one adaptation; more would run for hours an episode")]
"""A learner option counting the steps of one adaptation, bounded when a recipe gives it."""

Predictor = Callable[[Tensor], Tensor]
"""A learned task: query inputs [M, ...] -> logits [M, N]."""


@runtime_checkable
class SplitPredictor(Protocol):
    """A predictor in two stages, `head(features(x)) == predictor(x)`, whose first stage is the same function for
    every task of the learner `shared` and treats each input on its own: queries of many tasks can then share one
    `features` pass (a server batching concurrent requests does this)."""

    @property
    def shared(self) -> object: ...

    def features(self, x: Tensor) -> Tensor: ...

    def head(self, z: Tensor) -> Tensor: ...

    def __call__(self, x: Tensor) -> Tensor: ...


class FewShotAlgorithm(nn.Module):
    """A few-shot learner: `meta_loss` is the outer objective on a batch of tasks, `adapt` learns one task.

    What it needs from its builder and offers to evaluation is its class's `contract`. Subclasses may
    override `predict` to handle a whole TaskBatch at once (faster evaluation).
    """

    contract: ClassVar[Contract] = Contract()

    def meta_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, Tensor]]:
        """Scalar loss to minimise over the meta-parameters, and detached metrics (loss, acc, ...)."""
        raise NotImplementedError

    def meta_backward(self, batch: TaskBatch) -> dict[str, Tensor]:
        """Accumulate the gradient of the outer objective into the parameters' .grad; return the metrics.

        By default the backward pass of `meta_loss`. Algorithms override it to save memory (MAML frees each
        task's graph as it goes) or to define their own update direction (Reptile).
        """
        loss, metrics = self.meta_loss(batch)
        loss.backward()
        return metrics

    def adapt(self, support: Support, steps: int | None = None) -> Predictor:
        """Learn the task given by `support` (with `steps` inner steps where the contract takes adaptation
        steps; None: the learner's own number); return a function from query inputs to logits."""
        raise NotImplementedError

    def predict(self, batch: TaskBatch, steps: int | None = None) -> Tensor:
        """Logits [B, N*Q, N] for every task's query set, by adapting to each support set in turn."""
        return torch.stack([self.adapt(batch.support(i), steps)(batch.query_x[i]) for i in range(len(batch))])

    def probabilities(self, logits: Tensor) -> Tensor:
        """Class probabilities from this algorithm's scores (softmax; learners whose scores are not logits
        override it)."""
        return logits.float().softmax(-1)

    def check_steps(self, steps: int | None) -> None:
        """ValueError when adaptation steps are given to a learner whose contract takes none."""
        if steps is not None and not type(self).contract.adaptation_steps:
            raise ValueError(f"{type(self).__name__} takes no adaptation steps, got steps={steps}")

    def resolve_steps(self, steps: int | None, default: int) -> int:
        """The number of adaptation steps to take: `steps`, or `default` when None (see `check_steps`); an
        integer >= 0."""
        self.check_steps(steps)
        if steps is None:
            return default
        if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_ADAPTATION_STEPS:
            raise ValueError(f"adaptation steps must be an integer in [0, {MAX_ADAPTATION_STEPS:,}], got {steps!r}")
        return steps


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of correct predictions along the last axis of logits, averaged over the last label axis."""
    return (logits.argmax(-1) == labels).float().mean(-1)


def task_metrics(loss: Tensor, outputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
    """Training metrics of a batch: the loss, plus accuracy when the targets are class labels."""
    if targets.is_floating_point():
        return {"loss": loss}
    return {"loss": loss, "acc": accuracy(outputs.float(), targets).mean()}
