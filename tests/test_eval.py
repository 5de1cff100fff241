"""Evaluation: the confidence interval formula and the fixed-episode protocol."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from polyskill.data import ClassDataset, Support, TaskBatch
from polyskill.errors import RunError
from polyskill.eval import confidence_interval, few_shot
from polyskill.meta import FewShotAlgorithm


def test_confidence_interval_formula():
    values = [0.8, 0.9, 1.0, 0.6, 0.75, 0.95, 0.85]
    mean, ci = confidence_interval(torch.tensor(values, dtype=torch.float64))
    assert math.isclose(mean, statistics.fmean(values), rel_tol=1e-12)
    assert math.isclose(ci, 1.96 * statistics.stdev(values) / math.sqrt(len(values)), rel_tol=1e-9)
    assert math.isnan(confidence_interval(torch.tensor([0.5]))[1])


class NearestExample(FewShotAlgorithm):
    """A parameter-free 1-nearest-neighbour learner: its accuracy depends only on the episodes drawn."""

    def adapt(self, support: Support, steps: int | None = None):
        def predict(x):
            d = torch.cdist(x.flatten(1), support.x.flatten(1))
            return torch.nn.functional.one_hot(support.y[d.argmin(1)], support.num_classes).float()

        return predict


def _noisy_classes() -> ClassDataset:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(40, 1, 1, 4, 4, generator=g)
    return ClassDataset(centres + 0.9 * torch.randn(40, 10, 1, 4, 4, generator=g), [str(i) for i in range(40)])


def test_evaluation_is_fixed_by_seed_and_uses_per_task_adapt():
    data = _noisy_classes()
    a = few_shot(NearestExample(), data, way=5, shot=1, query=3, episodes=60, seed=0)
    b = few_shot(NearestExample(), data, way=5, shot=1, query=3, episodes=60, seed=0)
    c = few_shot(NearestExample(), data, way=5, shot=1, query=3, episodes=60, seed=1)
    assert a == b and a.accuracy != c.accuracy
    assert 0.2 < a.accuracy <= 1 and a.ci95 > 0 and a.episodes == 60
    assert "5-way 1-shot" in str(a)


def test_predict_default_loops_over_tasks():
    data = _noisy_classes()
    batch = TaskBatch(
        data.data[:3, :1].reshape(1, 3, 1, 4, 4),
        torch.arange(3).view(1, 3),
        data.data[:3, 1:3].reshape(1, 6, 1, 4, 4),
        torch.arange(3).repeat_interleave(2).view(1, 6),
        3,
    )
    assert NearestExample().predict(batch).shape == (1, 6, 3)


class TransformedNearestExample(NearestExample):
    """NearestExample's one-hot scores passed through `transform`: nan, +-inf or a ruled-out class on demand."""

    def __init__(self, transform) -> None:
        super().__init__()
        self.transform = transform

    def adapt(self, support: Support, steps: int | None = None):
        base = super().adapt(support, steps)
        return lambda x: self.transform(base(x))


def test_predictions_that_cannot_be_scored_stop_the_evaluation_instead_of_counting_as_chance():
    data = _noisy_classes()
    inf = float("inf")
    for transform in (lambda s: s * float("nan"), lambda s: s * inf, lambda s: s - inf):
        with pytest.raises(RunError, match="predictions are not finite"):
            few_shot(TransformedNearestExample(transform), data, way=5, shot=1, query=3, episodes=4, seed=0)
    ruled_out = TransformedNearestExample(lambda s: torch.where(s > 0, -inf, 0.0))  # the nearest class impossible
    assert few_shot(ruled_out, data, way=5, shot=1, query=3, episodes=20, seed=0).accuracy < 0.5
