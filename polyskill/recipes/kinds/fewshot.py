"""Few-shot classification (`kind: fewshot`): N-way K-shot episodes of image classes, a registered meta-learner,
accuracy over fixed episodes with a 95% interval for validation and test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from torch import nn

from ...data.class_batches import ClassBatchSampler
from ...data.classes import ClassDataset
from ...data.episodes import EpisodeSampler
from ...data.folder import image_folder
from ...data.omniglot_images import omniglot
from ...data.user_images import InputFormat
from ...distributed import SINGLE, DistContext
from ...distributed.streams import rank_seed
from ...errors import ConfigError
from ...eval.few_shot import FewShotAccuracy, FewShotResult
from ...eval.protocol import EvalProtocol
from ...eval.result import Result
from ...meta import ALGORITHMS
from ...meta.base import FewShotAlgorithm
from ..learners import NetworkSpec, contract, learner, network, parse_algo
from ..spec import at_least, choice, parsed
from .base import EvalRequest, Kind, Recipe, Root, Setup, learner_setup


@dataclass(frozen=True)
class ImageSource:
    """Where a data set's classes come from and what its images look like to a model trained on them."""

    load: Callable[[str, Root, ImageData], ClassDataset]
    input_format: Callable[[ImageData], InputFormat]
    channels: tuple[int, ...] = (1, 3)


IMAGE_SOURCES: dict[str, ImageSource] = {
    "omniglot": ImageSource(
        lambda where, root, spec: omniglot(where, root=root, image_size=spec.image_size),
        lambda spec: InputFormat(1, (spec.image_size,) * 2, bright_foreground=True, keep_aspect=True),
        channels=(1,),
    ),
    "folder": ImageSource(
        lambda where, root, spec: image_folder(where, image_size=spec.image_size, channels=spec.channels),
        lambda spec: InputFormat(spec.channels, (spec.image_size,) * 2),
    ),
}


MAX_IMAGE_SIZE = 1024  # larger than any few-shot benchmark's images; beyond it one episode would not fit in memory


@dataclass
class ImageData:
    """Which classes to train, validate and test on: Omniglot splits (`vinyals/train`, ...), or for `folder`
    paths of folders of class sub-folders. `val: null` trains without validation (the last weights are kept)."""

    dataset: str = choice("omniglot", tuple(IMAGE_SOURCES))
    train: str = "vinyals/train"
    val: str | None = "vinyals/val"
    test: str = "vinyals/test"
    image_size: int = 28
    channels: int = 1

    def __post_init__(self) -> None:
        at_least(self, image_size=1)
        if self.image_size > MAX_IMAGE_SIZE:
            raise ValueError(
                f"image_size must be <= {MAX_IMAGE_SIZE} (images are resized to it), got {self.image_size}"
            )
        allowed = IMAGE_SOURCES[self.dataset].channels
        if self.channels not in allowed:
            raise ValueError(
                f"channels must be {' or '.join(map(str, allowed))} for {self.dataset}, got {self.channels}"
            )


@dataclass
class EpisodeSpec:
    """An N-way K-shot Q-query protocol; a null shot means the training shot."""

    way: int = 5
    shot: int | None = 1
    query: int = 15

    def __post_init__(self) -> None:
        at_least(self, way=1, shot=1, query=0)


@dataclass
class EvalSpec:
    """The test protocols run after training and by `polyskill eval`: every way x shot (null: the training
    shot) x adaptation steps (null: the learner's own; gradient-based learners only)."""

    ways: list[int] = field(default_factory=lambda: [5, 20])
    shots: list[int] | None = None
    query: int = 15
    episodes: int = 1000
    seed: int = 0
    steps: list[int] | None = None

    def __post_init__(self) -> None:
        at_least(self, ways=1, shots=1, query=1, episodes=1, steps=0)


@dataclass
class FewShotRecipe(Recipe):
    kind: str = "fewshot"
    data: ImageData = field(default_factory=ImageData)
    model: NetworkSpec = field(default_factory=NetworkSpec)
    algo: dict[str, Any] = parsed(lambda: {"name": "protonet"}, parse_algo)  # noqa: RUF009 - returns a field()
    episodes: EpisodeSpec = field(default_factory=EpisodeSpec)
    validation: EpisodeSpec = field(default_factory=lambda: EpisodeSpec(way=20, shot=None, query=15))
    eval: EvalSpec = field(default_factory=EvalSpec)


def dataset(recipe: FewShotRecipe, split: str, root: Root = None) -> ClassDataset:
    """The classes of `split` ('train', 'val' or 'test') as the recipe's data section describes them."""
    where = getattr(recipe.data, split)
    if where is None:
        raise ConfigError(f"the recipe has no data.{split}")
    return IMAGE_SOURCES[recipe.data.dataset].load(where, root, recipe.data)


def input_shape(recipe: FewShotRecipe) -> tuple[int, int, int]:
    return (recipe.data.channels, recipe.data.image_size, recipe.data.image_size)


def input_format(recipe: FewShotRecipe) -> InputFormat:
    """How a user's images must look to this run's model."""
    return IMAGE_SOURCES[recipe.data.dataset].input_format(recipe.data)


def max_way(recipe: FewShotRecipe) -> int | None:
    """The most classes a task may have: the output layer's size for learners with one, else no limit."""
    return recipe.episodes.way if contract(recipe.algo).output_layer else None


def algorithm(recipe: FewShotRecipe, root: Root = None) -> FewShotAlgorithm:
    """A freshly initialised learner, seeded by train.seed so that a run is reproducible; a learner that
    classifies the training classes learns their number from the training data unless the recipe records it."""
    torch.manual_seed(recipe.train.seed)
    needs = contract(recipe.algo)
    outputs = recipe.episodes.way if needs.output_layer else None
    context: dict[str, Any] = {"input_shape": input_shape(recipe), "classes": recipe.episodes.way}
    if "num_classes" in needs.builder_args and recipe.algo.get("num_classes") is None:
        context["num_classes"] = dataset(recipe, "train", root).num_classes
    return learner(recipe.algo, network(recipe.model, input_shape(recipe), outputs, flatten=True), context)


def training_tasks(recipe: FewShotRecipe, algo: FewShotAlgorithm, root: Root = None, rank: int = 0) -> Any:
    """What the learner trains on: episodes, or (a learner pretrained as a classifier over all the training
    classes) batches of its `batch_size` labelled examples; each rank draws from its own seeded stream."""
    seed = rank_seed(recipe.train.seed, rank)
    if type(algo).contract.batches == "classes":
        return ClassBatchSampler(dataset(recipe, "train", root), cast(int, algo.batch_size), seed=seed)
    spec = recipe.episodes
    return EpisodeSampler(dataset(recipe, "train", root), spec.way, training_shot(recipe), spec.query, seed=seed)


def training_shot(recipe: FewShotRecipe) -> int:
    """The training episodes' shot (a number: null is only for the validation and test protocols)."""
    if recipe.episodes.shot is None:
        raise ConfigError("episodes.shot must be a number (null means 'the training shot' in validation only)")
    return recipe.episodes.shot


class FewShotKind(Kind):
    name = "fewshot"
    recipe_type: ClassVar[type[Recipe]] = FewShotRecipe
    eval_options = frozenset({"ways", "shots", "query", "episodes", "seed"})

    def check(self, recipe: FewShotRecipe) -> None:
        training_shot(recipe)
        if recipe.data.val is not None and recipe.validation.query < 1:
            raise ConfigError("validation.query must be >= 1: validation scores the query examples")
        needs = contract(recipe.algo)
        if recipe.eval.steps and not needs.adaptation_steps:
            raise ConfigError(
                f"eval.steps applies to learners that adapt by steps "
                f"({', '.join(n for n, c in ALGORITHMS.items() if c.contract.adaptation_steps)}), "
                f"not to {recipe.algo['name']}"
            )
        if needs.feature_maps and recipe.model.backbone != "conv4":
            raise ConfigError(f"{recipe.algo['name']} compares feature maps: it needs model.backbone conv4")
        if recipe.model.backbone == "mlp" and not needs.output_layer:
            raise ConfigError(f"model.backbone mlp needs a learner with an output layer, not {recipe.algo['name']}")

    def algorithm_label(self, recipe: FewShotRecipe) -> str:
        return str(recipe.algo["name"])

    def dataset_label(self, recipe: FewShotRecipe) -> str:
        return recipe.data.dataset

    def validation_result(self, recipe: FewShotRecipe) -> type[Result] | None:
        return None if recipe.data.val is None else FewShotResult

    def validation_protocol(self, recipe: FewShotRecipe, root: Root = None) -> EvalProtocol | None:
        if recipe.data.val is None:
            return None
        spec = recipe.validation
        sampler = EpisodeSampler(
            dataset(recipe, "val", root),
            spec.way,
            spec.shot or training_shot(recipe),
            spec.query,
            seed=recipe.eval.seed,
        )
        return FewShotAccuracy(
            sampler, recipe.train.val_episodes, recipe.eval.seed, None, recipe.train.precision, recipe.train.device
        )

    def model(self, recipe: FewShotRecipe, root: Root = None) -> nn.Module:
        return algorithm(recipe, root)

    def setup(
        self,
        recipe: FewShotRecipe,
        root: Root,
        out: Path,
        progress: bool,
        dist: DistContext = SINGLE,
        echo: Callable[[str], None] = print,
        resume: bool = False,
    ) -> Setup:
        algo = algorithm(recipe, root)
        if "num_classes" in type(algo).contract.builder_args:
            recipe.algo["num_classes"] = algo.num_classes  # recorded, so evaluation rebuilds the same classifier
        train = training_tasks(recipe, algo, root, rank=dist.rank)
        return learner_setup(
            recipe, algo, train, self.validation_protocol(recipe, root), out, progress, dist, echo, resume
        )

    def test_protocols(self, recipe: FewShotRecipe, request: EvalRequest, root: Root = None) -> list[EvalProtocol]:
        self.refuse_options(request)
        ways = request.ways or recipe.eval.ways
        limit = max_way(recipe)
        wrong = [w for w in ways if limit is not None and w != limit]
        if wrong:
            raise ConfigError(
                f"{recipe.algo['name']} was trained with a {limit}-way output layer and cannot be "
                f"tested on {wrong[0]}-way tasks; train it with --set episodes.way={wrong[0]}"
            )
        shots = request.shots or recipe.eval.shots or [training_shot(recipe)]
        steps: list[int | None] = [*recipe.eval.steps] if recipe.eval.steps else [None]
        classes = dataset(recipe, request.split, root)
        seed = recipe.eval.seed if request.seed is None else request.seed
        query = request.query or recipe.eval.query
        episodes = request.episodes or recipe.eval.episodes
        return [
            FewShotAccuracy(
                EpisodeSampler(classes, way, shot, query, seed=seed),
                episodes,
                seed,
                step,
                recipe.train.precision,
                recipe.train.device,
            )
            for step in steps
            for shot in shots
            for way in ways
        ]
