"""An evaluation protocol: which tasks, how each is scored, how the scores reduce to a `Result`.

Trainer validation and the test protocols after training are the same objects: the trainer sees only
`evaluate(model, dist) -> Result` (with `metric` and `higher_is_better`), so a new kind of problem brings its
protocol and nothing in the trainer changes. `EpisodeProtocol` is the shared form of the few-shot and
regression protocols: fixed tasks from a sampler (the same for every model), split over the ranks of a
distributed run, one score per task, mean and 95% interval over the tasks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from torch import Tensor, nn

from ..distributed import SINGLE, DistContext, gather_cat, share
from ..meta.base import FewShotAlgorithm
from ..nn.precision import inference
from .episodes import episode_scores
from .result import Result, confidence_interval


class EvalProtocol(ABC):
    """Evaluates a model into one `Result` of type `result_type` (which names the metric and its direction)."""

    result_type: ClassVar[type[Result]]

    @property
    def metric(self) -> str:
        return self.result_type.metric

    @property
    def higher_is_better(self) -> bool:
        return self.result_type.higher_is_better

    @abstractmethod
    def evaluate(self, model: nn.Module, dist: DistContext = SINGLE) -> Result:
        """The result of `model` on this protocol (every rank gets the whole result)."""


@dataclass
class EpisodeProtocol(EvalProtocol):
    """`episodes` fixed tasks of `sampler` (anything with `fixed(n, start=...)`), each scored by `score`."""

    sampler: Any
    episodes: int
    seed: int = 0
    steps: int | None = None
    precision: str = "fp32"
    device: str = "cpu"

    @abstractmethod
    def score(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """One value per task [B] from the predictions and the query targets."""

    @abstractmethod
    def result(self, mean: float, ci95: float) -> Result:
        """The typed result for the mean score and its interval."""

    def evaluate(self, model: nn.Module, dist: DistContext = SINGLE) -> Result:
        start, stop = share(self.episodes, dist)
        model.to(self.device)
        batches = (b.to(self.device) for b in self.sampler.fixed(stop - start, start=start))
        scores = episode_scores(
            cast(FewShotAlgorithm, model),
            batches,
            self.score,
            lambda: inference(self.precision, self.device),
            total=stop - start,
            steps=self.steps,
        )
        mean, ci = confidence_interval(gather_cat(scores, dist))
        return self.result(mean, ci)


__all__ = ["EpisodeProtocol", "EvalProtocol"]
