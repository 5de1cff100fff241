"""Objects from a recipe: the class datasets, the backbone and the algorithm."""

from __future__ import annotations

import os

import torch

from ..data.classes import ClassDataset
from ..data.folder import image_folder
from ..data.omniglot_images import omniglot
from ..errors import ConfigError
from ..meta import ALGORITHMS
from ..meta.base import FewShotAlgorithm
from ..nn.conv4 import Conv4
from .schema import Recipe


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
    return image_folder(where, image_size=spec.image_size, channels=spec.channels)


def algorithm(recipe: Recipe) -> FewShotAlgorithm:
    """A freshly initialised algorithm, seeded by train.seed so that a run is reproducible."""
    torch.manual_seed(recipe.train.seed)
    spec = recipe.model
    backbone = Conv4(in_channels=recipe.data.channels, hidden=spec.hidden, image_size=recipe.data.image_size)
    options = {k: v for k, v in recipe.algo.items() if k != "name"}
    return ALGORITHMS[recipe.algo["name"]](backbone, **options)
