"""Few-shot regression (`kind: regression`): K-shot tasks with real-valued targets, from synthetic task families
(sinusoid, multimodal) or from the tasks of a partitioned multi-task data set (School, Parkinsons subjects) seen
through their examples; a meta-learner with an output layer; query MSE (or, for data-set tasks, each task
learned from all its training examples) for validation and test."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ...data.multimodal import MultimodalTasks
from ...data.sinusoid import SinusoidTasks
from ...data.task_examples import TaskExamples, target_scale
from ...distributed import SINGLE, DistContext
from ...distributed.streams import rank_seed
from ...errors import ConfigError
from ...eval.protocol import EvalProtocol
from ...eval.regression import RegressionMSE, RegressionResult
from ...eval.result import Result
from ...eval.task_data import EachTaskFit, TaskDataResult
from ...meta.base import FewShotAlgorithm, Steps
from ...meta.contract import Contract
from ...nn.mlp import MLP
from ..learners import learner, parse_algo
from ..spec import at_least, building, choice, parsed
from .base import EvalRequest, Kind, Recipe, Root, Setup, learner_setup
from .datasets import multitask_data

SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}  # synthetic streams of different splits differ by their seed


class TaskSource:
    """Where a regression recipe's tasks come from: their input shape, a seeded task stream of a split, and
    the protocol that evaluates a learner on a split."""

    result: type[Result] = RegressionResult
    #: whether a test protocol draws tasks of `shot` examples (else each task learns from all its examples)
    uses_shots: bool = True

    def input_shape(self, spec: RegressionData, root: Root) -> tuple[int, ...]:
        return (1,)

    def tasks(self, spec: RegressionData, split: str, shot: int, query: int, seed: int, root: Root) -> Any:
        raise NotImplementedError

    def protocol(
        self,
        recipe: RegressionRecipe,
        split: str,
        shot: int,
        query: int,
        episodes: int,
        seed: int,
        steps: int | None,
        root: Root,
    ) -> EvalProtocol:
        """Query MSE over `episodes` fixed tasks of `split`."""
        sampler = self.tasks(recipe.data, split, shot, query, seed, root)
        return RegressionMSE(sampler, episodes, seed, steps, recipe.train.precision, recipe.train.device)


@dataclass(frozen=True)
class SyntheticSource(TaskSource):
    """Task families drawn from a seeded stream: the split only shifts the seed."""

    make: Callable[[RegressionData, int, int, int], Any]

    def tasks(self, spec: RegressionData, split: str, shot: int, query: int, seed: int, root: Root) -> Any:
        return self.make(spec, shot, query, seed + SPLIT_OFFSET[split] * 1_000_003)


class ExamplesSource(TaskSource):
    """The tasks of a partitioned multi-task data set, each seen through its examples; a split is evaluated by
    learning each task from all its training examples (the multi-task recipes' numbers)."""

    result = TaskDataResult
    uses_shots = False

    def input_shape(self, spec: RegressionData, root: Root) -> tuple[int, ...]:
        return tuple(multitask_data(spec, "train", root).x.shape[1:])

    def tasks(self, spec: RegressionData, split: str, shot: int, query: int, seed: int, root: Root) -> Any:
        scale = target_scale(multitask_data(spec, "train", root))
        return TaskExamples(multitask_data(spec, split, root), shot, query, seed=seed, scale=scale)

    def protocol(
        self,
        recipe: RegressionRecipe,
        split: str,
        shot: int,
        query: int,
        episodes: int,
        seed: int,
        steps: int | None,
        root: Root,
    ) -> EvalProtocol:
        train = self.tasks(recipe.data, "train", 1, 0, seed, root)
        return EachTaskFit(train, multitask_data(recipe.data, split, root), split, steps)


TASK_SOURCES: dict[str, TaskSource] = {
    "sinusoid": SyntheticSource(lambda spec, shot, query, seed: SinusoidTasks(shot, query, seed=seed)),
    "multimodal": SyntheticSource(
        lambda spec, shot, query, seed: MultimodalTasks(shot, query, modes=spec.modes, seed=seed)
    ),
    "school": ExamplesSource(),
    "parkinsons": ExamplesSource(),
}


@dataclass
class RegressionData:
    """The tasks: `sinusoid`, `multimodal` (`modes` function families, 1 to 5), or every task of `school` /
    `parkinsons` (with `tasks: subjects`) seen through its examples, in splits drawn with `split_seed`.
    `val: true` validates during training on tasks of the validation split (held-out seeds for synthetic
    tasks) and keeps the best weights; null or false trains without validation."""

    dataset: str = choice("sinusoid", tuple(TASK_SOURCES))
    val: bool | None = None
    modes: int = 5
    split_seed: int = 0
    tasks: str | None = None

    def __post_init__(self) -> None:
        at_least(self, modes=1)
        if self.modes > 5:
            raise ValueError(f"modes must be <= 5 (the multimodal families), got {self.modes}")


@dataclass
class RegressionNetwork:
    """An MLP with hidden layer `widths`, inputs and the single output from the data; `init`: a run directory
    (or checkpoint file) whose weights start this run."""

    backbone: str = choice("mlp", ("mlp",))
    widths: list[int] = field(default_factory=lambda: [40, 40])
    init: str | None = None

    def __post_init__(self) -> None:
        at_least(self, widths=1)


@dataclass
class ShotSpec:
    """K support and Q query examples per task."""

    shot: int = 10
    query: int = 10

    def __post_init__(self) -> None:
        at_least(self, shot=1, query=0)


@dataclass
class RegressionEval:
    """The test protocols: every shot (null: the training shot) x adaptation steps (null: the learner's own),
    each over `episodes` fixed tasks of `query` points."""

    shots: list[int] | None = None
    query: int = 15
    episodes: int = 1000
    seed: int = 0
    steps: list[Steps] | None = None

    def __post_init__(self) -> None:
        at_least(self, shots=1, query=1, episodes=1, steps=0)


def _regresses(needs: Contract) -> str | None:
    return None if needs.regression else "it classifies, and regression needs a learner with one real output"


@dataclass
class RegressionRecipe(Recipe):
    kind: str = "regression"
    data: RegressionData = field(default_factory=RegressionData)
    model: RegressionNetwork = field(default_factory=RegressionNetwork)
    algo: dict[str, Any] = parsed(lambda: {"name": "maml"}, lambda v, k: parse_algo(v, k, _regresses))  # noqa: RUF009
    episodes: ShotSpec = field(default_factory=ShotSpec)
    eval: RegressionEval = field(default_factory=RegressionEval)


def algorithm(recipe: RegressionRecipe, root: Root = None) -> FewShotAlgorithm:
    """A freshly initialised learner over an MLP with one output, seeded by train.seed."""
    torch.manual_seed(recipe.train.seed)
    shape = TASK_SOURCES[recipe.data.dataset].input_shape(recipe.data, root)
    with building("model"):
        backbone = MLP([math.prod(shape), *recipe.model.widths, 1])
    return learner(recipe.algo, backbone, {"input_shape": shape, "classes": None})


class RegressionKind(Kind):
    name = "regression"
    recipe_type: ClassVar[type[Recipe]] = RegressionRecipe
    eval_options = frozenset({"shots", "query", "episodes", "seed"})
    validation_setting = "--set data.val=true"

    def check(self, recipe: RegressionRecipe) -> None:
        if recipe.data.tasks is not None and recipe.data.dataset != "parkinsons":
            raise ConfigError(f"data.tasks applies to parkinsons only, not to {recipe.data.dataset}")

    def algorithm_label(self, recipe: RegressionRecipe) -> str:
        return str(recipe.algo["name"])

    def dataset_label(self, recipe: RegressionRecipe) -> str:
        return recipe.data.dataset

    def validation_result(self, recipe: RegressionRecipe) -> type[Result] | None:
        return TASK_SOURCES[recipe.data.dataset].result if recipe.data.val else None

    def validation_protocol(self, recipe: RegressionRecipe, root: Root = None) -> EvalProtocol | None:
        if not recipe.data.val:
            return None
        spec = recipe.episodes
        return TASK_SOURCES[recipe.data.dataset].protocol(
            recipe, "val", spec.shot, spec.query, recipe.train.val_episodes, recipe.eval.seed, None, root
        )

    def model(self, recipe: RegressionRecipe, root: Root = None) -> nn.Module:
        return algorithm(recipe, root)

    def setup(
        self,
        recipe: RegressionRecipe,
        root: Root,
        out: Path,
        progress: bool,
        dist: DistContext = SINGLE,
        echo: Callable[[str], None] = print,
        resume: bool = False,
    ) -> Setup:
        algo = algorithm(recipe, root)
        spec = recipe.episodes
        train = TASK_SOURCES[recipe.data.dataset].tasks(
            recipe.data, "train", spec.shot, spec.query, rank_seed(recipe.train.seed, dist.rank), root
        )
        return learner_setup(
            recipe, algo, train, self.validation_protocol(recipe, root), out, progress, dist, echo, resume
        )

    def test_protocols(self, recipe: RegressionRecipe, request: EvalRequest, root: Root = None) -> list[EvalProtocol]:
        self.refuse_options(request)
        source = TASK_SOURCES[recipe.data.dataset]
        shots = request.shots or recipe.eval.shots or [recipe.episodes.shot]
        seed = recipe.eval.seed if request.seed is None else request.seed
        query = request.query or recipe.eval.query
        episodes = request.episodes or recipe.eval.episodes
        if not source.uses_shots:
            shots = shots[:1]  # each task learns from all its examples: the shot does not apply
        steps: list[int | None] = [*recipe.eval.steps] if recipe.eval.steps else [None]
        return [
            source.protocol(recipe, request.split, shot, query, episodes, seed, step, root)
            for step in steps
            for shot in shots
        ]


def tasks(recipe: RegressionRecipe, split: str, shot: int, query: int, seed: int, root: Root = None) -> Any:
    """A seeded stream of the recipe's tasks of `split` with `shot` support and `query` query examples."""
    return TASK_SOURCES[recipe.data.dataset].tasks(recipe.data, split, shot, query, seed, root)
