"""N-way K-shot episodes drawn from a ClassDataset by index gather: no per-image Python, seeded generators."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from ..errors import ConfigError
from .classes import ClassDataset, to_float


@dataclass
class Support:
    """The labelled examples of one task: x [N*K, ...], y [N*K] with labels 0..N-1."""

    x: Tensor
    y: Tensor
    num_classes: int | None = None

    def __post_init__(self) -> None:
        if self.num_classes is None:
            self.num_classes = int(self.y.max()) + 1 if self.y.numel() else 0


@dataclass
class TaskBatch:
    """B tasks stacked: support_x [B, N*K, ...], support_y [B, N*K], query_x [B, N*Q, ...], query_y [B, N*Q].

    Examples are ordered class by class; label i is the i-th class drawn for that task.
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    way: int

    def __len__(self) -> int:
        return self.support_x.shape[0]

    @property
    def shot(self) -> int:
        return self.support_y.shape[1] // self.way

    def support(self, i: int) -> Support:
        """The support set of task i."""
        return Support(self.support_x[i], self.support_y[i], self.way)

    def to(self, device: torch.device | str) -> "TaskBatch":
        return TaskBatch(self.support_x.to(device), self.support_y.to(device), self.query_x.to(device),
                         self.query_y.to(device), self.way)

    @staticmethod
    def cat(batches: list["TaskBatch"]) -> "TaskBatch":
        """Stack the tasks of several batches of the same way and shot."""
        return TaskBatch(*(torch.cat([getattr(b, f) for b in batches]) for f in
                           ("support_x", "support_y", "query_x", "query_y")), batches[0].way)


def _episode_seed(seed: int, index: int) -> int:
    """A distinct 63-bit seed per (seed, episode index), so episode i never depends on batching."""
    return ((seed & 0x7FFFFFFF) * 0x9E3779B1 + index * 0x85EBCA77 + 0x165667B1) & 0x7FFFFFFFFFFFFFFF


class EpisodeSampler:
    """Draws N-way K-shot Q-query tasks from a ClassDataset.

    `sample(B)` continues a seeded stream (its state is saved with checkpoints); `episode(i)` and
    `fixed(n)` give evaluation episodes that depend only on (seed, i), so every algorithm is measured
    on the same tasks.
    """

    def __init__(self, dataset: ClassDataset, way: int, shot: int, query: int, seed: int = 0) -> None:
        for name, value, low in (("way", way, 1), ("shot", shot, 1), ("query", query, 0)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"episode {name} must be an integer >= {low}, got {value!r}")
        self.dataset, self.way, self.shot, self.query, self.seed = dataset, way, shot, query, seed
        need = shot + query
        self.eligible = torch.nonzero(dataset.counts >= need).flatten()
        if len(self.eligible) < way:
            raise ConfigError(
                f"a {way}-way episode with {shot} shot(s) and {query} quer(ies) needs {way} classes with at least "
                f"{need} examples each; this dataset has {len(self.eligible)} such classes "
                f"(of {dataset.num_classes})")
        self._all_eligible = len(self.eligible) == dataset.num_classes
        self._ragged = bool((dataset.counts[self.eligible] < dataset.data.shape[1]).any())
        self.generator = torch.Generator().manual_seed(seed)

    def _draw(self, batch_size: int, generator: torch.Generator) -> TaskBatch:
        data, way, n = self.dataset.data, self.way, self.shot + self.query
        picks = torch.rand(batch_size, len(self.eligible), generator=generator).topk(way, dim=1).indices
        classes = picks if self._all_eligible else self.eligible[picks]
        scores = torch.rand(batch_size, way, data.shape[1], generator=generator)
        if self._ragged:
            slots = torch.arange(data.shape[1])
            scores.masked_fill_(slots >= self.dataset.counts[classes].unsqueeze(-1), -1.0)
        examples = scores.topk(n, dim=2).indices
        x = to_float(data[classes.unsqueeze(-1), examples])  # [B, N, K+Q, *shape]
        shape = x.shape[3:]
        labels = torch.arange(way).view(1, way, 1)
        return TaskBatch(
            x[:, :, :self.shot].reshape(batch_size, way * self.shot, *shape),
            labels.expand(batch_size, way, self.shot).reshape(batch_size, -1),
            x[:, :, self.shot:].reshape(batch_size, way * self.query, *shape),
            labels.expand(batch_size, way, self.query).reshape(batch_size, -1),
            way,
        )

    def sample(self, batch_size: int = 1) -> TaskBatch:
        """The next `batch_size` tasks of the training stream."""
        return self._draw(batch_size, self.generator)

    def episode(self, index: int) -> TaskBatch:
        """Evaluation episode `index`: a batch of one task fixed by (seed, index)."""
        return self._draw(1, torch.Generator().manual_seed(_episode_seed(self.seed, index)))

    def fixed(self, episodes: int, batch_size: int | None = None, start: int = 0) -> Iterator[TaskBatch]:
        """Episodes start .. start+episodes-1, in batches of up to `batch_size` tasks (default: ~4000 images)."""
        if batch_size is None:
            batch_size = max(1, 4000 // (self.way * (self.shot + self.query)))
        for first in range(start, start + episodes, batch_size):
            last = min(first + batch_size, start + episodes)
            yield TaskBatch.cat([self.episode(i) for i in range(first, last)])

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def __iter__(self) -> Iterator[TaskBatch]:
        while True:
            yield self.sample()


def episodes(dataset: ClassDataset, way: int, shot: int, query: int, seed: int = 0) -> EpisodeSampler:
    """A seeded N-way K-shot Q-query sampler over `dataset`."""
    return EpisodeSampler(dataset, way, shot, query, seed)
