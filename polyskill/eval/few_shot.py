"""Few-shot evaluation: mean query accuracy over fixed episodes with a 95% confidence interval."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..data.classes import ClassDataset
from ..data.episodes import EpisodeSampler
from ..distributed import SINGLE, DistContext, gather_cat, share
from ..meta.base import FewShotAlgorithm, episode_accuracies
from ..nn.precision import inference


def confidence_interval(values: Tensor) -> tuple[float, float]:
    """(mean, 1.96 * s / sqrt(n)) with s the sample standard deviation (n - 1 denominator); nan CI for n < 2."""
    values = values.double()
    n = values.numel()
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan
    return mean, 1.96 * float(values.std(unbiased=True)) / math.sqrt(n)


@dataclass(frozen=True)
class FewShotResult:
    """Accuracy of one protocol (way, shot, query, episodes, seed) as fractions in [0, 1]."""

    way: int
    shot: int
    query: int
    episodes: int
    seed: int
    accuracy: float
    ci95: float
    steps: int | None = None

    def __str__(self) -> str:
        steps = f", {self.steps} adaptation steps" if self.steps is not None else ""
        return (f"{self.way}-way {self.shot}-shot: {100 * self.accuracy:.2f} +- {100 * self.ci95:.2f} % "
                f"({self.episodes} episodes, {self.query} queries per class{steps})")

    def to_dict(self) -> dict:
        return asdict(self)


def few_shot(algo: FewShotAlgorithm, dataset: ClassDataset, way: int = 5, shot: int = 1, query: int = 15,
             episodes: int = 1000, seed: int = 0, precision: str = "fp32",
             device: torch.device | str = "cpu", dist: DistContext = SINGLE) -> FewShotResult:
    """Evaluate `algo` on `episodes` fixed N-way K-shot tasks of `dataset` (the same tasks for every algorithm);
    on several processes each rank takes a share of the episodes and every rank gets the whole result."""
    sampler = EpisodeSampler(dataset, way, shot, query, seed=seed)
    start, stop = share(episodes, dist)
    batches = (b.to(device) for b in sampler.fixed(stop - start, start=start))
    acc = episode_accuracies(algo.to(device), batches, lambda: inference(precision, device), total=stop - start)
    mean, ci = confidence_interval(gather_cat(acc, dist))
    return FewShotResult(way, shot, query, episodes, seed, mean, ci)
