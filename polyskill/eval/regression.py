"""Few-shot regression: query mean squared error over fixed tasks, with a 95% confidence interval."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

from torch import Tensor

from ..data.episodes import TaskBatch
from ..distributed import SINGLE, DistContext, gather_cat, share
from ..meta.base import FewShotAlgorithm, episode_scores
from .few_shot import confidence_interval


@dataclass(frozen=True)
class RegressionResult:
    """Mean query MSE of one protocol (shot, query, episodes, seed, adaptation steps)."""

    shot: int
    query: int
    episodes: int
    seed: int
    steps: int | None
    mse: float
    ci95: float

    def __str__(self) -> str:
        steps = f", {self.steps} adaptation steps" if self.steps is not None else ""
        return (f"{self.shot}-shot regression{steps}: MSE {self.mse:.4f} +- {self.ci95:.4f} "
                f"({self.episodes} tasks, {self.query} query points)")

    def to_dict(self) -> dict:
        return asdict(self)


def squared_errors(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error of each task: outputs and targets [B, M, ...] -> [B]."""
    return (outputs.reshape(targets.shape) - targets).pow(2).flatten(1).mean(1)


def task_mse(algo: FewShotAlgorithm, batches: Iterable[TaskBatch], total: int | None = None) -> Tensor:
    """Query mean squared error of each task [E], the algorithm in eval mode (mode restored after)."""
    return episode_scores(algo, batches, squared_errors, total=total)


def regression(algo: FewShotAlgorithm, tasks, episodes: int = 600, seed: int = 0,
               steps: int | None = None, dist: DistContext = SINGLE) -> RegressionResult:
    """Evaluate `algo` on `episodes` fixed tasks of the sampler `tasks` (same tasks for every model); `seed`
    is the protocol's episode seed as the caller names it (the sampler already carries the seed it draws with).
    On several processes each rank takes a share of the tasks."""
    start, stop = share(episodes, dist)
    errors = task_mse(algo, tasks.fixed(stop - start, start=start), total=stop - start)
    mse, ci = confidence_interval(gather_cat(errors, dist))
    return RegressionResult(tasks.shot, tasks.query, episodes, seed, steps, mse, ci)
