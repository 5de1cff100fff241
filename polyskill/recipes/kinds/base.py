"""A problem kind: what one kind of run (few-shot classification, few-shot regression, multi-task learning, ...)
owns. Its recipe sections and their schema, how its run is built (model, training step source, validation
protocol), its test protocols and its labels. The runner and the readers talk to kinds through this interface
only, so a new domain is one new module and one registry line in `kinds/__init__.py`."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

from torch import nn

from ...distributed import SINGLE, DistContext
from ...errors import ConfigError
from ...eval.protocol import EvalProtocol
from ...eval.result import Result
from ...eval.summary import ValidationRecord
from ...records import RecordSink
from ...train.episodic import FitConfig, Trainer
from ...train.transfer import load_backbone
from ..spec import build

Root = str | None


@dataclass
class Recipe:
    """What every recipe has: its kind (the first key), a name, a description and how to train."""

    kind: str = ""
    name: str = "custom"
    description: str = ""
    train: FitConfig = field(default_factory=FitConfig)


@dataclass
class EvalRequest:
    """A test run's options from the command line; None means the recipe's own."""

    split: str = "test"
    ways: list[int] | None = None
    shots: list[int] | None = None
    query: int | None = None
    episodes: int | None = None
    seed: int | None = None
    baseline: str | None = None


@dataclass
class Setup:
    """A run ready to train: a trainer over its training steps given the record sinks, and what to write once
    training ends."""

    trainer: Callable[[list[RecordSink]], Trainer]
    finish: Callable[[Path], None] = lambda out: None


def learner_setup(
    recipe: Any,
    algo: Any,
    train: Any,
    val: EvalProtocol | None,
    out: Path,
    progress: bool,
    dist: DistContext,
    echo: Callable[[str], None],
    resume: bool,
) -> Setup:
    """A meta-learner's run: its weights started from `model.init` on a fresh run, trained by the episodic
    trainer on the stream `train`, validated by `val`."""
    if recipe.model.init and not resume:
        loaded = load_backbone(cast(nn.Module, algo.backbone), recipe.model.init)
        echo(f"backbone started from {recipe.model.init} ({len(loaded)} tensors)")
    return Setup(
        lambda sinks: Trainer(algo, train, recipe.train, out=out, val=val, progress=progress, sinks=sinks, dist=dist),
    )


def known_sections() -> set[str]:
    """Every section some kind has (a section of another kind is named as such, not as a typo)."""
    from . import KINDS

    return {f.name for kind in KINDS.values() for f in dataclasses.fields(kind.recipe_type)}


class Kind(ABC):
    """One kind of problem. Subclasses name themselves, declare their recipe dataclass and implement the rest."""

    name: ClassVar[str]
    recipe_type: ClassVar[type[Recipe]]
    #: FitConfig fields this kind's training never reads: setting one is a load-time error
    unused_train_keys: ClassVar[frozenset[str]] = frozenset()
    #: EvalRequest options this kind's test protocols use
    eval_options: ClassVar[frozenset[str]] = frozenset()
    #: the override that turns validation on for a recipe that has none (what a sweep tells its user)
    validation_setting: ClassVar[str] = "--set data.val=SPLIT"

    def load(self, values: dict[str, Any]) -> Recipe:
        """Validate a raw recipe mapping (its `kind` already checked) into this kind's recipe."""
        train = values.get("train")
        if isinstance(train, dict):
            unused = sorted(set(train) & self.unused_train_keys)
            if unused:
                raise ConfigError(f"train.{unused[0]} is not used by {self.name} recipes: remove it")
        sections = [f.name for f in dataclasses.fields(self.recipe_type)]
        for key in values:
            if key not in sections and key in known_sections():
                raise ConfigError(
                    f"section '{key}' is not used by {self.name} recipes (they have "
                    f"{', '.join(s for s in sections if s != 'kind')})"
                )
        recipe = build(self.recipe_type, values)
        self.check(recipe)
        return recipe

    def check(self, recipe: Any) -> None:  # noqa: B027 - a hook with a default, not an abstract method
        """Checks across sections, after each section validated on its own (default: none)."""

    @abstractmethod
    def algorithm_label(self, recipe: Any) -> str:
        """What `polyskill runs` shows as the algorithm."""

    @abstractmethod
    def dataset_label(self, recipe: Any) -> str:
        """What `polyskill runs` shows as the data."""

    @abstractmethod
    def validation_protocol(self, recipe: Any, root: Root = None) -> EvalProtocol | None:
        """The protocol validation runs during training, or None when the recipe does not validate."""

    def validation(self, recipe: Any) -> ValidationRecord | None:
        """The validation metric and its direction, without loading any data (None: no validation)."""
        protocol_type = self.validation_result(recipe)
        return None if protocol_type is None else ValidationRecord(protocol_type.metric, protocol_type.higher_is_better)

    @abstractmethod
    def validation_result(self, recipe: Any) -> type[Result] | None:
        """The result type validation produces (its metric and direction), or None without validation."""

    @abstractmethod
    def setup(
        self,
        recipe: Any,
        root: Root,
        out: Path,
        progress: bool,
        dist: DistContext = SINGLE,
        echo: Callable[[str], None] = print,
        resume: bool = False,
    ) -> Setup:
        """The model and trainer of a fresh run (a resumed one loads its checkpoint into them)."""

    @abstractmethod
    def model(self, recipe: Any, root: Root = None) -> nn.Module:
        """A freshly initialised model of the recipe, for loading a trained run's weights into."""

    @abstractmethod
    def test_protocols(self, recipe: Any, request: EvalRequest, root: Root = None) -> list[EvalProtocol]:
        """The protocols `polyskill eval` (and the test after training) runs."""

    def finish_results(
        self, recipe: Any, results: list[Result], request: EvalRequest, echo: Callable[[str], None]
    ) -> list[Result]:
        """Results after a test, completed with what needs other runs (delta-m); default: as they are."""
        return results

    def refuse_options(self, request: EvalRequest) -> None:
        """One clear error for an evaluation option this kind has no use for."""
        names = {
            "ways": "--way",
            "shots": "--shot",
            "query": "--query",
            "episodes": "--episodes",
            "seed": "--seed",
            "baseline": "--baseline",
        }
        unused = [
            flag for key, flag in names.items() if getattr(request, key) is not None and key not in self.eval_options
        ]
        if unused:
            raise ConfigError(
                f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used by {self.name} "
                f"runs"
                + (
                    f" (they take {', '.join(names[k] for k in sorted(self.eval_options))})"
                    if self.eval_options
                    else ""
                )
            )
