"""Ordinary supervised mini-batches over all the classes of a ClassDataset, shaped as TaskBatches so that the
episodic trainer can pretrain a classifier (Baseline, Baseline++, contrastive embeddings) unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ..errors import ConfigError
from .augment import Augment, augment_images
from .classes import ClassDataset, to_float
from .episodes import TaskBatch, augmentation_generator


class ClassBatchSampler:
    """Seeded epochs without replacement over every real example, cut into batches of `batch_size`.

    `sample(B)` returns B "tasks" with an empty support set and `batch_size` query examples each, labelled
    with their global class 0..C-1 (`way` = C). Batches run on across epoch boundaries, so the stream is the
    same however it is consumed; `state_dict` / `load_state_dict` continue it exactly. `augment` transforms
    every batch's images, drawing from its own generator, checkpointed with the stream.
    """

    def __init__(self, dataset: ClassDataset, batch_size: int, seed: int = 0, augment: Augment | None = None) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if dataset.num_examples < 1:
            raise ConfigError("a class batch sampler needs a dataset with at least one example")
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rows = _real_rows(dataset)
        self.generator = torch.Generator().manual_seed(seed)
        self._epoch_state = self.generator.get_state()
        self._order = self._shuffle()
        self._position = 0
        self.augment = augment
        self._augment_generator = augmentation_generator(seed, augment, dataset)

    @property
    def way(self) -> int:
        return self.dataset.num_classes

    @property
    def epoch_size(self) -> int:
        """Examples in one epoch: all the real examples of the dataset."""
        return len(self.rows)

    def _shuffle(self) -> Tensor:
        """The next epoch's order of rows, remembering the generator state it was drawn from."""
        self._epoch_state = self.generator.get_state()
        return self.rows[torch.randperm(len(self.rows), generator=self.generator)]

    def _next_rows(self, count: int) -> Tensor:
        """The next `count` rows of the stream, starting new epochs as needed."""
        pieces = []
        while count > 0:
            if self._position == len(self._order):
                self._order, self._position = self._shuffle(), 0
            take = min(count, len(self._order) - self._position)
            pieces.append(self._order[self._position : self._position + take])
            self._position += take
            count -= take
        return torch.cat(pieces)

    def sample(self, batch_size: int = 1) -> TaskBatch:
        """The next `batch_size` batches as one TaskBatch: query_x [B, batch_size, ...], query_y global labels."""
        rows = self._next_rows(batch_size * self.batch_size)
        shape = self.dataset.example_shape
        x = to_float(self.dataset.data.view(-1, *shape).index_select(0, rows))
        if self.augment is not None and self._augment_generator is not None:
            x = augment_images(self.augment, x, self._augment_generator)
        y = (rows // self.dataset.data.shape[1]).view(batch_size, self.batch_size)
        return TaskBatch(
            x.new_empty(batch_size, 0, *shape),
            y.new_empty(batch_size, 0),
            x.view(batch_size, self.batch_size, *shape),
            y,
            self.way,
        )

    def state_dict(self) -> dict:
        """Where the stream stands: the generator before the current epoch's shuffle, and the position in it."""
        state = {"generator": self._epoch_state, "position": self._position, "seed": self.seed}
        if self._augment_generator is not None:
            state["augment"] = self._augment_generator.get_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        if self._augment_generator is not None and "augment" in state:
            self._augment_generator.set_state(state["augment"])
        self.generator.set_state(state["generator"])
        self._order = self._shuffle()
        self._position = state["position"]

    def __iter__(self) -> Iterator[TaskBatch]:
        while True:
            yield self.sample()


def _real_rows(dataset: ClassDataset) -> Tensor:
    """Flat row indices (class * E + slot) of the filled slots, skipping the padding of ragged classes."""
    per_class = dataset.data.shape[1]
    filled = torch.arange(per_class) < dataset.counts.unsqueeze(1)  # [C, E]
    return torch.nonzero(filled.flatten()).flatten()
