"""Objects from a multi-task recipe: the data splits, the architecture, the aggregator and the learner."""

from __future__ import annotations

import inspect
import os
from typing import Callable

import torch
from torch import nn

from ..data.multitask import MultiTaskData
from ..errors import ConfigError
from ..mtl import aggregator_class, architecture_class
from ..mtl.base import MultiTaskModel
from ..mtl.learner import MultiTaskLearner
from ..nn.lenet import LeNetEncoder, lenet_head
from .schema import MULTITASK_DATASETS, Recipe


def is_multitask(recipe: Recipe) -> bool:
    """Whether the recipe trains a multi-task model (not a meta-learner over the data set's tasks)."""
    return recipe.data.dataset in MULTITASK_DATASETS and not recipe.data.as_tasks


def mtl_data(recipe: Recipe, split: str, root: str | os.PathLike | None = None) -> MultiTaskData:
    """The recipe's data set, split `split` ('train', 'val' or 'test')."""
    from ..data import mtl_synthetic, multifashion, parkinsons, school

    spec = recipe.data
    if spec.tasks is not None and spec.dataset != "parkinsons":
        raise ConfigError(f"data.tasks applies to parkinsons only, not to {spec.dataset}")
    try:
        if spec.dataset == "multifashion":
            return multifashion(split, root=root, seed=spec.split_seed)
        if spec.dataset == "school":
            return school(split, root=root, split_seed=spec.split_seed)
        if spec.dataset == "parkinsons":
            return parkinsons(split, root=root, split_seed=spec.split_seed, tasks=spec.tasks or "targets")
        return mtl_synthetic(split, seed=spec.split_seed)
    except ValueError as exc:
        raise ConfigError(f"data: {exc}") from None


def _mlp_stages(widths: list[int], inputs: int) -> nn.Sequential:
    """An MLP encoder whose stages are Linear + ReLU blocks (what cross-stitch and MTAN connect)."""
    sizes = [inputs, *widths]
    return nn.Sequential(*[nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in zip(sizes, sizes[1:])])


def _encoder_and_head(recipe: Recipe, data: MultiTaskData) -> tuple[Callable[[], nn.Sequential],
                                                                     Callable[[str], nn.Module]]:
    spec = recipe.model
    classes = dict(zip(data.tasks, data.classes))
    if spec.backbone == "lenet":
        if data.x.dim() != 4:
            raise ConfigError(f"model.backbone lenet reads images; {recipe.data.dataset} has feature vectors "
                              f"(use model.backbone: mlp)")
        channels, size = data.x.shape[1], data.x.shape[-1]
        return (lambda: LeNetEncoder(channels, size)), (lambda task: lenet_head(classes[task] or 1))
    if spec.backbone == "mlp":
        inputs = int(torch.tensor(data.x.shape[1:]).prod())
        flatten = data.x.dim() > 2

        def encoder() -> nn.Sequential:
            stages = _mlp_stages(spec.widths, inputs)
            if flatten:
                stages[0] = nn.Sequential(nn.Flatten(), *stages[0])
            return stages

        return encoder, (lambda task: nn.Linear(spec.widths[-1], classes[task] or 1))
    raise ConfigError(f"model.backbone {spec.backbone} is for few-shot learning; multi-task recipes take "
                      f"lenet or mlp")


def mtl_model(recipe: Recipe, data: MultiTaskData) -> MultiTaskModel:
    """The recipe's architecture over its encoder, one head per task of `data`."""
    encoder, head = _encoder_and_head(recipe, data)
    cls = architecture_class(recipe.mtl.architecture)
    try:
        return cls(data.tasks, encoder, head, tuple(data.x.shape[1:]), **recipe.mtl.architecture_options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"mtl.architecture_options: {exc}") from None


def tie_heads(model: MultiTaskModel) -> None:
    """Give every task head the first task's initial weights."""
    heads = getattr(model, "heads", None)
    if not isinstance(heads, nn.ModuleDict):
        raise ConfigError(f"mtl.tie_heads: {type(model).__name__} has no per-task heads to tie")
    first = heads[model.tasks[0]].state_dict()
    for task in model.tasks[1:]:
        heads[task].load_state_dict(first)


def learner(recipe: Recipe, data: MultiTaskData) -> MultiTaskLearner:
    """A freshly initialised learner (seeded by train.seed) for the tasks of `data`."""
    torch.manual_seed(recipe.train.seed)
    spec = recipe.mtl
    model = mtl_model(recipe, data)
    if spec.tie_heads:
        tie_heads(model)
    cls = aggregator_class(spec.weighting)
    options = dict(spec.options)
    if "num_tasks" in inspect.signature(cls).parameters:
        options["num_tasks"] = len(data.tasks)
    try:
        aggregator = cls(**options)
    except ValueError as exc:
        raise ConfigError(f"mtl.options: {exc}") from None
    if spec.rep_grad:
        try:
            model.forward_with_representation(data.x[:2])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return MultiTaskLearner(model, aggregator, data.classes, partitioned=data.partitioned, rep_grad=spec.rep_grad,
                            affinity_every=spec.affinity_every, lookahead_lr=recipe.train.lr)
