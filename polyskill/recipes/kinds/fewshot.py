"""Few-shot classification (`kind: fewshot`): N-way K-shot episodes of classes of images or texts (a modality,
chosen by the data set), a registered meta-learner, accuracy over fixed episodes with a 95% interval for
validation and test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from torch import nn

from ...data.class_batches import ClassBatchSampler
from ...data.classes import ClassDataset
from ...data.episodes import EpisodeSampler
from ...distributed import SINGLE, DistContext
from ...distributed.streams import rank_seed
from ...errors import ConfigError
from ...eval.few_shot import FewShotAccuracy, FewShotResult
from ...eval.full_test import FullTestAccuracy
from ...eval.protocol import EvalProtocol
from ...eval.result import Result
from ...meta import ALGORITHMS
from ...meta.base import FewShotAlgorithm, Steps
from ..learners import NetworkSpec, contract, learner, parse_algo
from ..spec import at_least, build, choice, parsed
from .base import EvalRequest, Kind, Recipe, Root, Setup, learner_setup
from .fewshot_images import ImageData, ImageModality
from .fewshot_text import TextModality
from .modality import Modality

MODALITIES: tuple[Modality, ...] = (ImageModality(), TextModality())
_BY_DATASET = {name: m for m in MODALITIES for name in m.datasets}
_BY_BACKBONE = {name: m for m in MODALITIES for name in m.backbones}


def parse_data(values: Any, key: str) -> Any:
    """`data:` as the section of the modality its `dataset` belongs to (images by default)."""
    name = values.get("dataset", "omniglot") if isinstance(values, dict) else None
    modality = _BY_DATASET.get(name) if isinstance(name, str) else None
    if isinstance(values, dict) and modality is None:
        raise ConfigError(f"{key}.dataset must be one of {', '.join(_BY_DATASET)}, got {str(name)[:80]!r}")
    return build(modality.data_type if modality else ImageData, values, f"{key}.")


def parse_model(values: Any, key: str) -> Any:
    """`model:` as the section of its `backbone` (conv4 by default)."""
    name = values.get("backbone", "conv4") if isinstance(values, dict) else None
    modality = _BY_BACKBONE.get(name) if isinstance(name, str) else None
    if isinstance(values, dict) and modality is None:
        raise ConfigError(f"{key}.backbone must be one of {', '.join(_BY_BACKBONE)}, got {str(name)[:80]!r}")
    spec = modality.backbones[str(name)] if modality else NetworkSpec
    if modality and isinstance(values, dict):
        _refuse_other_backbones_keys(values, key, str(name), modality, spec)
    return build(spec, values, f"{key}.")


def _refuse_other_backbones_keys(values: dict, key: str, name: str, modality: Modality, spec: type) -> None:
    """A key of another backbone's section (a recipe's `hidden` after `--set model.backbone=resnet12`) is one
    line saying how to switch a recipe's backbone: by setting the whole section."""
    own = {f.name for f in fields(spec)}
    for stray in sorted(set(values) - own):
        owners = [
            other for other, other_spec in modality.backbones.items() if stray in {f.name for f in fields(other_spec)}
        ]
        if owners:
            raise ConfigError(
                f"{key}.{stray} is a setting of model.backbone {' or '.join(owners)}, not {name}; to change a recipe's "
                f"backbone set the whole section: --set '{key}={{backbone: {name}}}'"
            )


def modality(recipe: Any) -> Modality:
    """The modality of the recipe's data."""
    return _BY_DATASET[recipe.data.dataset]


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
    """The test protocols run after training and by `polyskill eval`. `protocol: episodes`: every way x shot (null:
    the training shot) x adaptation steps (null: the learner's own; gradient-based learners only) over `episodes`
    fixed episodes. `protocol: full`: the intent-detection protocol, every class of data.test at once, `shots`
    examples per class drawn from the `support` split (same classes), scored on every test example, over `draws`
    seeded draws (`ways`, `query` and `episodes` do not apply)."""

    protocol: str = choice("episodes", ("episodes", "full"))
    ways: list[int] = field(default_factory=lambda: [5, 20])
    shots: list[int] | None = None
    query: int = 15
    episodes: int = 1000
    seed: int = 0
    steps: list[Steps] | None = None
    support: str | None = None
    draws: int = 5

    def __post_init__(self) -> None:
        at_least(self, ways=1, shots=1, query=1, episodes=1, steps=0, draws=1)
        if self.protocol == "full" and self.support is None:
            raise ValueError("protocol full draws the support examples from a split: set support (e.g. full-train)")
        if self.protocol == "episodes" and self.support is not None:
            raise ValueError("support is the split of protocol full; episodes draw the support set from the test split")


@dataclass
class FewShotRecipe(Recipe):
    kind: str = "fewshot"
    data: Any = parsed(ImageData, parse_data)  # noqa: RUF009 - returns a field()
    model: Any = parsed(NetworkSpec, parse_model)  # noqa: RUF009 - returns a field()
    algo: dict[str, Any] = parsed(lambda: {"name": "protonet"}, parse_algo)  # noqa: RUF009 - returns a field()
    episodes: EpisodeSpec = field(default_factory=EpisodeSpec)
    validation: EpisodeSpec = field(default_factory=lambda: EpisodeSpec(way=20, shot=None, query=15))
    eval: EvalSpec = field(default_factory=EvalSpec)


def _where(recipe: FewShotRecipe, split: str) -> str:
    """What the data section names for `split` ('train', 'val' or 'test'), or ConfigError when it names nothing."""
    where = getattr(recipe.data, split)
    if where is None:
        raise ConfigError(f"the recipe has no data.{split}")
    return str(where)


def dataset(recipe: FewShotRecipe, split: str, root: Root = None) -> ClassDataset:
    """The classes of `split` ('train', 'val' or 'test') as the recipe's data section describes them."""
    return modality(recipe).classes(recipe, _where(recipe, split), root)


def class_count(recipe: FewShotRecipe, split: str, root: Root = None) -> int:
    """How many classes `split` holds, counted without building its tensors where the modality can."""
    return modality(recipe).num_classes(recipe, _where(recipe, split), root)


def input_shape(recipe: FewShotRecipe) -> tuple[int, ...]:
    return modality(recipe).input_shape(recipe)


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
        context["num_classes"] = class_count(recipe, "train", root)
    return learner(recipe.algo, modality(recipe).network(recipe, outputs), context)


def training_tasks(recipe: FewShotRecipe, algo: FewShotAlgorithm, root: Root = None, rank: int = 0) -> Any:
    """What the learner trains on: episodes, or (a learner pretrained as a classifier over all the training
    classes) batches of its `batch_size` labelled examples; each rank draws from its own seeded stream, whose
    images the data section's augmentation transforms (image data only; never validation or test tasks)."""
    seed = rank_seed(recipe.train.seed, rank)
    augment = recipe.data.augmentation() if isinstance(recipe.data, ImageData) else None
    train = dataset(recipe, "train", root)
    if type(algo).contract.batches == "classes":
        return ClassBatchSampler(train, cast(int, algo.batch_size), seed=seed, augment=augment)
    spec = recipe.episodes
    return EpisodeSampler(train, spec.way, training_shot(recipe), spec.query, seed=seed, augment=augment)


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
        kind = modality(recipe)
        if recipe.model.backbone not in kind.backbones:
            raise ConfigError(
                f"model.backbone {recipe.model.backbone} does not take {kind.name} data ({recipe.data.dataset}); "
                f"use {' or '.join(kind.backbones)}"
            )
        kind.check(recipe, needs)

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
        if not any(p.requires_grad for p in algo.parameters()):
            raise ConfigError(
                f"{recipe.algo['name']} over this model has no weights to train (a frozen encoder and no "
                "model.widths): add model.widths, e.g. [256], or fine-tune the encoder (model.finetune top)"
            )
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
        wrong = [w for w in ways if limit is not None and w != limit and recipe.eval.protocol == "episodes"]
        if wrong:
            raise ConfigError(
                f"{recipe.algo['name']} was trained with a {limit}-way output layer and cannot be "
                f"tested on {wrong[0]}-way tasks; train it with --set episodes.way={wrong[0]}"
            )
        shots = request.shots or recipe.eval.shots or [training_shot(recipe)]
        steps: list[int | None] = [*recipe.eval.steps] if recipe.eval.steps else [None]
        classes = dataset(recipe, request.split, root)
        seed = recipe.eval.seed if request.seed is None else request.seed
        if recipe.eval.protocol == "full":
            return self._full_protocols(recipe, request, classes, shots, steps, seed, root)
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

    def _full_protocols(
        self,
        recipe: FewShotRecipe,
        request: EvalRequest,
        classes: ClassDataset,
        shots: list[int],
        steps: list[int | None],
        seed: int,
        root: Root,
    ) -> list[EvalProtocol]:
        """The whole-test-set protocols: one per shot and number of adaptation steps."""
        if request.ways or request.query:
            raise ConfigError("--way and --query do not apply to eval.protocol full: it tests every class at once")
        limit = max_way(recipe)
        if limit is not None and limit != classes.num_classes:
            raise ConfigError(
                f"{recipe.algo['name']} was trained with a {limit}-way output layer and cannot be tested on the "
                f"{classes.num_classes} classes of data.{request.split} at once"
            )
        pool = modality(recipe).classes(recipe, cast(str, recipe.eval.support), root)
        draws = request.episodes or recipe.eval.draws
        return [
            FullTestAccuracy(pool, classes, shot, draws, seed, step, recipe.train.precision, recipe.train.device)
            for step in steps
            for shot in shots
        ]
