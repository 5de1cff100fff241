"""Few-shot regression: query mean squared error over fixed tasks, with a 95% confidence interval."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from ..distributed import SINGLE, DistContext
from ..meta.base import FewShotAlgorithm
from .episodes import squared_errors
from .protocol import EpisodeProtocol
from .result import Result


@dataclass(frozen=True)
class RegressionResult(Result):
    """Mean query MSE of one protocol (shot, query, episodes, seed, adaptation steps)."""

    protocol: ClassVar[str] = "regression"
    metric: ClassVar[str] = "mse"
    higher_is_better: ClassVar[bool] = False
    measured: ClassVar[tuple[str, ...]] = ("mse", "ci95")

    shot: int
    query: int
    episodes: int
    seed: int
    steps: int | None
    mse: float
    ci95: float
    weights: str | None = None

    def __str__(self) -> str:
        steps = f", {self.steps} adaptation steps" if self.steps is not None else ""
        return (
            f"{self.shot}-shot regression{steps}: MSE {self.mse:.4f} +- {self.ci95:.4f} "
            f"({self.episodes} tasks, {self.query} query points)"
        )

    @property
    def label(self) -> str:
        steps = f"@{self.steps}" if self.steps is not None else ""
        return f"{self.shot}-shot{steps}"

    def formatted(self) -> str:
        return f"MSE {self.mse:.4f}±{self.ci95:.4f}"


@dataclass
class RegressionMSE(EpisodeProtocol):
    """Query MSE over fixed regression tasks of `sampler` (its shot and query are the protocol's)."""

    result_type: ClassVar[type[Result]] = RegressionResult

    def score(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return squared_errors(outputs, targets)

    def result(self, mean: float, ci95: float) -> Result:
        return RegressionResult(self.sampler.shot, self.sampler.query, self.episodes, self.seed, self.steps, mean, ci95)


def regression(
    algo: FewShotAlgorithm,
    tasks: Any,
    episodes: int = 600,
    seed: int = 0,
    steps: int | None = None,
    dist: DistContext = SINGLE,
) -> RegressionResult:
    """Evaluate `algo` on `episodes` fixed tasks of the sampler `tasks` (same tasks for every model); `seed`
    is the protocol's episode seed as the caller names it (the sampler already carries the seed it draws with).
    On several processes each rank takes a share of the tasks."""
    return RegressionMSE(tasks, episodes, seed, steps).evaluate(algo, dist)  # type: ignore[return-value]


__all__ = ["RegressionMSE", "RegressionResult", "regression", "squared_errors"]
