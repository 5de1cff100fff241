"""The standard few-shot protocol of intent detection (Casanueva et al., 2020): K examples of every class drawn
from a training pool, the model adapted to them, and scored on the whole test set, not on sampled episodes;
accuracy is the mean over several seeded draws of the K examples, with a 95% interval over the draws."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..data.classes import ClassDataset, draw_indices, to_float
from ..data.episodes import Support
from ..distributed import SINGLE, DistContext, gather_cat, share
from ..errors import ConfigError
from ..meta.base import FewShotAlgorithm
from ..meta.contract import is_transductive
from ..nn.precision import inference
from .episodes import check_usable
from .few_shot import AccuracyResult
from .protocol import EvalProtocol
from .result import Result, confidence_interval


@dataclass(frozen=True)
class FullTestResult(AccuracyResult):
    """Accuracy on every example of the test classes after adapting to `shot` drawn examples per class, mean over
    `draws` draws (fractions in [0, 1]); `transductive`: the learner's predictions depend on the other queries of
    a batch (`batch` test examples at a time), so this is transductive accuracy."""

    protocol: ClassVar[str] = "full_test"

    way: int
    shot: int
    draws: int
    seed: int
    examples: int
    accuracy: float
    ci95: float
    steps: int | None = None
    weights: str | None = None
    transductive: bool = False
    batch: int | None = None

    def __str__(self) -> str:
        how = f" (transductive, {self.batch} queries at a time)" if self.transductive else ""
        return (
            f"{self.way}-way {self.shot}-shot on the whole test set ({self.examples} examples){how}: "
            f"{100 * self.accuracy:.2f} +- {100 * self.ci95:.2f} % ({self.draws} draws of the support set"
            f"{self._steps(', {} adaptation steps')})"
        )

    @property
    def label(self) -> str:
        return f"{self.way}w{self.shot}s-all{self._steps('@{}')}{'-trans' if self.transductive else ''}"


def aligned(pool: ClassDataset, test: ClassDataset) -> ClassDataset:
    """The pool's classes in the test set's order (matched by name): every test class needs examples to draw."""
    where = {name: i for i, name in enumerate(pool.names)}
    missing = [name for name in test.names if name not in where]
    if missing:
        raise ConfigError(
            f"{len(missing)} test class(es) have no examples to draw the support set from, e.g. {missing[0]!r}: "
            "eval.support must hold the same classes as data.test"
        )
    return pool.subset([where[name] for name in test.names])


@dataclass
class FullTestAccuracy(EvalProtocol):
    """`draws` seeded draws of `shot` examples per class from `pool`, each scored on every example of `test`."""

    result_type: ClassVar[type[Result]] = FullTestResult

    pool: ClassDataset
    test: ClassDataset
    shot: int
    draws: int = 5
    seed: int = 0
    steps: int | None = None
    precision: str = "fp32"
    device: str = "cpu"
    batch_size: int = 256

    def __post_init__(self) -> None:
        self.pool = aligned(self.pool, self.test)
        short = [n for n, c in zip(self.pool.names, self.pool.counts.tolist(), strict=True) if c < self.shot]
        if short:
            raise ConfigError(
                f"{len(short)} class(es) have fewer than {self.shot} examples to draw from, e.g. {short[0]!r}"
            )

    def support(self, draw: int) -> Support:
        """The support set of draw `draw`: `shot` examples of each class, the same for every model (those that
        `data.draw_shots(classes, shot, seed + draw)` picks from the same classes)."""
        rows = draw_indices(self.pool.counts.tolist(), self.shot, self.seed + draw)
        x = torch.cat([self.pool.data[c, torch.as_tensor(r)] for c, r in enumerate(rows)])
        y = torch.arange(len(rows)).repeat_interleave(self.shot)
        return Support(to_float(x), y, len(rows))

    def queries(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every test example and its class."""
        counts = self.test.counts.tolist()
        x = torch.cat([self.test.data[c, :n] for c, n in enumerate(counts)])
        return to_float(x), torch.arange(len(counts)).repeat_interleave(torch.tensor(counts))

    def evaluate(self, model: torch.nn.Module, dist: DistContext = SINGLE) -> Result:
        algo: FewShotAlgorithm = model  # type: ignore[assignment]
        start, stop = share(self.draws, dist)
        model.to(self.device)
        was_training = model.training
        model.eval()
        x, y = self.queries()
        scores = []
        try:
            for draw in range(start, stop):
                support = self.support(draw)
                support = Support(support.x.to(self.device), support.y.to(self.device), support.num_classes)
                with inference(self.precision, self.device):
                    predictor = algo.adapt(support, self.steps) if self.steps is not None else algo.adapt(support)
                    predicted = torch.cat(
                        [
                            check_usable(predictor(x[i : i + self.batch_size].to(self.device)).float()).argmax(-1).cpu()
                            for i in range(0, len(x), self.batch_size)
                        ]
                    )
                scores.append((predicted == y).float().mean())
        finally:
            model.train(was_training)
        mean, ci = confidence_interval(gather_cat(torch.stack(scores) if scores else torch.empty(0), dist))
        transductive = is_transductive(model)
        return FullTestResult(
            self.test.num_classes,
            self.shot,
            self.draws,
            self.seed,
            len(y),
            mean,
            ci,
            self.steps,
            transductive=transductive,
            batch=self.batch_size if transductive else None,
        )


__all__ = ["FullTestAccuracy", "FullTestResult"]
