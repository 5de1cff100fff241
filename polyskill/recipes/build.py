"""Objects from a recipe: the task samplers, the backbone and the algorithm."""

from __future__ import annotations

import inspect
import math
import os

import torch
from torch import nn

from ..data.classes import ClassDataset
from ..data.episodes import EpisodeSampler
from ..data.folder import image_folder
from ..data.multimodal import MultimodalTasks
from ..data.omniglot_images import omniglot
from ..data.sinusoid import SinusoidTasks
from ..data.task_examples import TaskExamples, target_scale
from ..data.user_images import InputFormat
from ..distributed.streams import rank_seed
from ..errors import ConfigError
from ..meta import ALGORITHMS
from ..meta.base import FewShotAlgorithm
from ..nn.conv4 import Conv4
from ..nn.mlp import MLP
from .mtl_build import mtl_data
from .schema import Recipe

Tasks = EpisodeSampler | SinusoidTasks | TaskExamples


REGRESSION_DATASETS = ("sinusoid", "multimodal")


def is_regression(recipe: Recipe) -> bool:
    return recipe.data.dataset in REGRESSION_DATASETS or recipe.data.as_tasks


def input_shape(recipe: Recipe, root: str | os.PathLike | None = None) -> tuple[int, ...]:
    """The shape of one input of the recipe's tasks."""
    if recipe.data.as_tasks:
        return tuple(mtl_data(recipe, "train", root).x.shape[1:])
    if is_regression(recipe):
        return (1,)
    return (recipe.data.channels, recipe.data.image_size, recipe.data.image_size)


def dataset(recipe: Recipe, split: str, root: str | os.PathLike | None = None) -> ClassDataset:
    """The classes of `split` ('train', 'val' or 'test') as the recipe's data section describes them."""
    spec = recipe.data
    where = getattr(spec, split)
    if where is None:
        raise ConfigError(f"the recipe has no data.{split}")
    if spec.dataset == "omniglot":
        if spec.channels != 1:
            raise ConfigError("Omniglot is greyscale: data.channels must be 1")
        return omniglot(where, root=root, image_size=spec.image_size)
    if spec.dataset == "folder":
        return image_folder(where, image_size=spec.image_size, channels=spec.channels)
    raise ConfigError(f"data.dataset {spec.dataset!r} has no classes to load")


def tasks(recipe: Recipe, split: str, way: int, shot: int, query: int, seed: int,
          root: str | os.PathLike | None = None) -> Tasks:
    """A task sampler over `split`: N-way K-shot episodes of its classes, or K-shot regression tasks (of a
    multi-task data set's tasks: their examples in `split`, targets scaled as in the training split)."""
    if recipe.data.as_tasks:
        scale = target_scale(mtl_data(recipe, "train", root))
        return TaskExamples(mtl_data(recipe, split, root), shot, query, seed=seed, scale=scale)
    if is_regression(recipe):
        seed = seed + {"train": 0, "val": 1, "test": 2}[split] * 1_000_003
        if recipe.data.dataset == "multimodal":
            return MultimodalTasks(shot, query, modes=recipe.data.modes, seed=seed)
        return SinusoidTasks(shot, query, seed=seed)
    return EpisodeSampler(dataset(recipe, split, root), way, shot, query, seed=seed)


def training_tasks(recipe: Recipe, algo: FewShotAlgorithm, root: str | os.PathLike | None = None,
                   rank: int = 0) -> object:
    """What the algorithm trains on: episodes, or (for learners pretrained as classifiers over all the
    training classes, `batch_source = 'classes'`) batches of `algo.batch_size` labelled examples; each rank of
    a distributed run draws from its own seeded stream."""
    seed = rank_seed(recipe.train.seed, rank)
    if getattr(algo, "batch_source", "episodes") == "classes":
        from ..data.class_batches import ClassBatchSampler
        return ClassBatchSampler(dataset(recipe, "train", root), algo.batch_size, seed=seed)
    spec = recipe.episodes
    return tasks(recipe, "train", spec.way, spec.shot, spec.query, seed, root)


def input_format(recipe: Recipe) -> InputFormat:
    """How a user's images must look to this run's model: Omniglot's bright ink on dark, kept square; a
    folder's images as its loader made them."""
    spec = recipe.data
    if spec.dataset == "omniglot":
        return InputFormat(1, (spec.image_size, spec.image_size), bright_foreground=True, keep_aspect=True)
    if spec.dataset == "folder":
        return InputFormat(spec.channels, (spec.image_size, spec.image_size))
    raise ConfigError(f"a {spec.dataset} run does not classify images; adapt needs an image few-shot run")


def max_way(recipe: Recipe) -> int | None:
    """The most classes a task may have: the output layer's size for learners with one, else no limit."""
    return recipe.episodes.way if getattr(ALGORITHMS[recipe.algo["name"]], "needs_head", False) else None


def backbone(recipe: Recipe, outputs: int | None, root: str | os.PathLike | None = None) -> nn.Module:
    """The recipe's network; `outputs` adds a linear head of that size (None: an embedding network)."""
    spec = recipe.model
    if spec.backbone == "mlp":
        if outputs is None:
            raise ConfigError("model.backbone mlp needs an algorithm with an output layer (maml, reptile)")
        inputs = math.prod(input_shape(recipe, root))
        return MLP([inputs, *spec.widths, outputs]) if is_regression(recipe) else nn.Sequential(
            nn.Flatten(), MLP([inputs, *spec.widths, outputs]))
    if is_regression(recipe):
        raise ConfigError(f"{recipe.data.dataset} regression takes model.backbone: mlp")
    try:
        return Conv4(in_channels=recipe.data.channels, hidden=spec.hidden, out_features=outputs,
                     image_size=recipe.data.image_size, pools=spec.pools)
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None


def algorithm(recipe: Recipe, root: str | os.PathLike | None = None) -> FewShotAlgorithm:
    """A freshly initialised algorithm, seeded by train.seed so that a run is reproducible. Learners that
    classify the training classes get `num_classes` from the recipe (a trained run records it), else from
    the training data."""
    torch.manual_seed(recipe.train.seed)
    cls = ALGORITHMS[recipe.algo["name"]]
    outputs = (1 if is_regression(recipe) else recipe.episodes.way) if getattr(cls, "needs_head", False) else None
    if outputs is None and is_regression(recipe):
        raise ConfigError(f"algo {recipe.algo['name']} classifies; regression needs a learner with an output "
                          f"layer (maml, reptile, task_conditioned)")
    options = {k: v for k, v in recipe.algo.items() if k != "name"}
    signature = inspect.signature(cls).parameters
    if "input_shape" in signature:
        options["input_shape"] = input_shape(recipe, root)
    if "classes" in signature:
        options["classes"] = None if is_regression(recipe) else recipe.episodes.way
    if "num_classes" in signature and options.get("num_classes") is None:
        options["num_classes"] = dataset(recipe, "train", root).num_classes
    try:
        return cls(backbone(recipe, outputs, root), **options)
    except ValueError as exc:
        raise ConfigError(f"algo: {exc}") from None
