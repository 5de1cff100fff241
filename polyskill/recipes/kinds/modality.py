"""What a few-shot run's examples are (images, text, ...): one `Modality` per kind of input, owning its `data:` and
`model:` sections, how a split becomes the class-indexed tensors episodes are drawn from, the network over them,
and how a user's own examples are read. The few-shot kind dispatches through this interface only, so a new
modality is one module and one line in `fewshot.py`'s MODALITIES."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from torch import nn

from ...data.classes import ClassDataset
from ...meta.contract import Contract
from .base import Root


class Modality(ABC):
    """One kind of few-shot input: its data sets, its backbones and their sections."""

    name: ClassVar[str]
    #: the `data:` section's dataclass; its `dataset` field names one of `datasets`
    data_type: ClassVar[type]
    #: the data sets (`data.dataset` values) of this modality
    datasets: ClassVar[tuple[str, ...]]
    #: the `model:` section's dataclass for each backbone name of this modality
    backbones: ClassVar[dict[str, type]]

    @abstractmethod
    def classes(self, recipe: Any, where: str, root: Root = None) -> ClassDataset:
        """The classes a split of the data section names (`where`: `vinyals/train`, `full-test`, a path, ...) as
        the tensors the model takes."""

    def num_classes(self, recipe: Any, where: str, root: Root = None) -> int:
        """How many classes a split holds; a modality whose `classes` is costly (encoding every text) counts them
        without it, so that building a classifier over the training classes does not encode the set."""
        return self.classes(recipe, where, root).num_classes

    @abstractmethod
    def input_shape(self, recipe: Any) -> tuple[int, ...]:
        """The shape of one example as the model takes it."""

    @abstractmethod
    def network(self, recipe: Any, outputs: int | None) -> nn.Module:
        """The recipe's network; `outputs` adds a linear head of that size (None: an embedding network)."""

    def check(self, recipe: Any, needs: Contract) -> None:  # noqa: B027 - a hook with a default
        """Checks of the data and model sections against the learner's contract (default: none)."""

    @abstractmethod
    def inputs(self, recipe: Any, invert: str = "auto", truncate: bool = False) -> Any:
        """What turns a user's examples into model inputs for `FewShotClassifier` and `polyskill adapt`
        (`convert`, `read_support`, `read_query`, `column`); `invert` concerns images, `truncate` texts."""

    def dataset_label(self, recipe: Any) -> str:
        return str(recipe.data.dataset)
