"""The runs a server holds: each loaded once (weights only), named, described, and given the reader of its
modality, which turns a request's examples into what the model takes."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..classifier import FewShotClassifier
from ..errors import ConfigError
from ..recipes.kinds.fewshot import FewShotRecipe, modality
from ..recipes.kinds.fewshot_images import ImageInputs
from ..recipes.kinds.fewshot_text import TextInputs
from ..recipes.runner import trained_model
from .config import ServeConfig, ServeLimits
from .readers import ImageReader, Reader, TextReader

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: the reader of each modality's inputs (one line per modality a server takes)
READERS: dict[type, type[Reader]] = {ImageInputs: ImageReader, TextInputs: TextReader}


@dataclass
class ServedModel:
    """One served run: its name, recipe, classifier (algorithm and inputs) and request reader."""

    name: str
    recipe: FewShotRecipe
    classifier: FewShotClassifier
    reader: Reader
    limits: ServeLimits

    @property
    def max_classes(self) -> int:
        """The most classes a task may have: the server's limit, or the model's fixed output width if smaller."""
        way = self.classifier.max_way
        return min(self.limits.max_classes, way) if way is not None else self.limits.max_classes

    def describe(self) -> dict[str, Any]:
        """What `GET /v1/models` says of this run."""
        return {
            "name": self.name,
            "kind": self.recipe.kind,
            "modality": modality(self.recipe).name,
            "algorithm": str(self.recipe.algo["name"]),
            "recipe": self.recipe.name,
            "input": self.reader.describe(),
            "max_classes": self.max_classes,
        }


def parse_spec(spec: str) -> tuple[str, Path]:
    """`RUN` or `NAME=RUN` -> (name, run directory); the name defaults to the run folder's name."""
    name, sep, path = spec.partition("=")
    if not sep or not NAME.match(name) or os.path.isdir(spec):
        name, path = "", spec
    run = Path(path)
    name = name or run.resolve().name
    if not NAME.match(name):
        raise ConfigError(
            f"cannot serve {spec!r} under the name {name!r}: a name is 1-64 letters, digits, '.', '_' or '-' "
            "starting with a letter or digit; give one as NAME=RUN"
        )
    return name, run


def load_model(spec: str, config: ServeConfig) -> ServedModel:
    """Load the run of `spec` (see `parse_spec`) for serving: a few-shot run, its weights read weights-only."""
    name, run = parse_spec(spec)
    recipe, algo = trained_model(run)
    if not isinstance(recipe, FewShotRecipe):
        raise ConfigError(f"{run} is a {recipe.kind} run: `polyskill serve` serves few-shot classification runs")
    classifier = FewShotClassifier.from_recipe(recipe, algo, config.device, truncate=config.truncate, where=str(run))
    reader_type = READERS.get(type(classifier.inputs))
    if reader_type is None:
        raise ConfigError(f"{run}: serving {modality(recipe).name} runs is not supported")
    return ServedModel(name, recipe, classifier, reader_type(classifier.inputs, config.limits), config.limits)


def load_models(specs: list[str], config: ServeConfig) -> list[ServedModel]:
    """Every run of `specs`, refusing two under one name."""
    if not specs:
        raise ConfigError("give at least one run directory to serve")
    models: list[ServedModel] = []
    for spec in specs:
        model = load_model(spec, config)
        if any(m.name == model.name for m in models):
            raise ConfigError(f"two runs would be served as {model.name!r}: name them apart with NAME=RUN")
        models.append(model)
    return models
