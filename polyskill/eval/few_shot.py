"""Few-shot classification: mean query accuracy over fixed N-way K-shot episodes with a 95% confidence interval."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..data.classes import ClassDataset
from ..data.episodes import EpisodeSampler
from ..distributed import SINGLE, DistContext
from ..meta.base import FewShotAlgorithm
from ..meta.contract import is_transductive
from .episodes import accuracy
from .protocol import EpisodeProtocol
from .result import Result, confidence_interval


class AccuracyResult(Result):
    """A classification result: `accuracy` (a fraction in [0, 1]) with its 95% interval `ci95`, shown in percent;
    `steps` names the adaptation steps it was measured with (None: the learner's own)."""

    metric: ClassVar[str] = "accuracy"
    measured: ClassVar[tuple[str, ...]] = ("accuracy", "ci95")
    accuracy: float
    ci95: float
    steps: int | None

    def _steps(self, template: str) -> str:
        return template.format(self.steps) if self.steps is not None else ""

    def formatted(self) -> str:
        return f"{100 * self.accuracy:.2f}±{100 * self.ci95:.2f}%"


@dataclass(frozen=True)
class FewShotResult(AccuracyResult):
    """Accuracy of one protocol (way, shot, query, episodes, seed, adaptation steps) as fractions in [0, 1];
    `transductive`: the learner's prediction for a query could depend on the episode's other queries (TIM, PT-MAP,
    MAML's query-set batch norm, ...), so this is transductive accuracy (false in summaries written before)."""

    protocol: ClassVar[str] = "few_shot"

    way: int
    shot: int
    query: int
    episodes: int
    seed: int
    accuracy: float
    ci95: float
    steps: int | None = None
    weights: str | None = None
    transductive: bool = False

    def __str__(self) -> str:
        return (
            f"{self.way}-way {self.shot}-shot{' (transductive)' if self.transductive else ''}: "
            f"{100 * self.accuracy:.2f} +- {100 * self.ci95:.2f} % "
            f"({self.episodes} episodes, {self.query} queries per class{self._steps(', {} adaptation steps')})"
        )

    @property
    def label(self) -> str:
        return f"{self.way}w{self.shot}s{self._steps('@{}')}{'-trans' if self.transductive else ''}"


@dataclass
class FewShotAccuracy(EpisodeProtocol):
    """Query accuracy over fixed episodes of `sampler` (an EpisodeSampler: way, shot and query are its own), each
    episode's query set predicted at once; the result says whether the learner's predictions were transductive."""

    result_type: ClassVar[type[Result]] = FewShotResult

    def evaluate(self, model: nn.Module, dist: DistContext = SINGLE) -> Result:
        result = super().evaluate(model, dist)
        return dataclasses.replace(result, transductive=is_transductive(model))  # type: ignore[type-var]

    def score(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return accuracy(outputs, targets)

    def result(self, mean: float, ci95: float) -> Result:
        s = self.sampler
        return FewShotResult(s.way, s.shot, s.query, self.episodes, self.seed, mean, ci95, self.steps)


def few_shot(
    algo: FewShotAlgorithm,
    dataset: ClassDataset,
    way: int = 5,
    shot: int = 1,
    query: int = 15,
    episodes: int = 1000,
    seed: int = 0,
    precision: str = "fp32",
    device: torch.device | str = "cpu",
    dist: DistContext = SINGLE,
    steps: int | None = None,
) -> FewShotResult:
    """Evaluate `algo` on `episodes` fixed N-way K-shot tasks of `dataset` (the same tasks for every algorithm);
    on several processes each rank takes a share of the episodes and every rank gets the whole result."""
    protocol = FewShotAccuracy(
        EpisodeSampler(dataset, way, shot, query, seed=seed), episodes, seed, steps, precision, str(device)
    )
    return protocol.evaluate(algo, dist)  # type: ignore[return-value]


__all__ = ["AccuracyResult", "FewShotAccuracy", "FewShotResult", "confidence_interval", "few_shot"]
