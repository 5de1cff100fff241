"""N-way K-shot episodes drawn from a ClassDataset by index gather: no per-image Python, seeded generators."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..errors import ConfigError
from .augment import Augment, augment_images
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
    #: one seed per task from the training stream (its position in the stream): randomness inside a learner
    #: (Reptile's mini-batch order) drawn from it is the same however the meta-batch is split over processes
    task_seeds: Tensor | None = None

    def __len__(self) -> int:
        return self.support_x.shape[0]

    @property
    def shot(self) -> int:
        return self.support_y.shape[1] // self.way

    def support(self, i: int) -> Support:
        """The support set of task i."""
        return Support(self.support_x[i], self.support_y[i], self.way)

    def to(self, device: torch.device | str) -> TaskBatch:
        return TaskBatch(
            self.support_x.to(device),
            self.support_y.to(device),
            self.query_x.to(device),
            self.query_y.to(device),
            self.way,
            self.task_seeds,
        )

    def slice(self, start: int, stop: int) -> TaskBatch:
        """Tasks start..stop-1 (views, no copy)."""
        return TaskBatch(
            self.support_x[start:stop],
            self.support_y[start:stop],
            self.query_x[start:stop],
            self.query_y[start:stop],
            self.way,
            None if self.task_seeds is None else self.task_seeds[start:stop],
        )

    @staticmethod
    def cat(batches: list[TaskBatch]) -> TaskBatch:
        """Stack the tasks of several batches of the same way and shot."""
        seeds = [b.task_seeds for b in batches if b.task_seeds is not None]
        return TaskBatch(
            torch.cat([b.support_x for b in batches]),
            torch.cat([b.support_y for b in batches]),
            torch.cat([b.query_x for b in batches]),
            torch.cat([b.query_y for b in batches]),
            batches[0].way,
            torch.cat(seeds) if len(seeds) == len(batches) else None,
        )


_TRAINING_SALT = 0x5EED5  # task seeds of the training stream never equal evaluation episode seeds
_AUGMENT_SALT = 0xA06  # the augmentation generator's seed differs from the stream's own


def _episode_seed(seed: int, index: int) -> int:
    """A distinct 63-bit seed per (seed, episode index), so episode i never depends on batching."""
    return ((seed & 0x7FFFFFFF) * 0x9E3779B1 + index * 0x85EBCA77 + 0x165667B1) & 0x7FFFFFFFFFFFFFFF


class EpisodeSampler:
    """Draws N-way K-shot Q-query tasks from a ClassDataset.

    `sample(B)` continues a seeded stream (its state is saved with checkpoints); `episode(i)` and
    `fixed(n)` give evaluation episodes that depend only on (seed, i), so every algorithm is measured
    on the same tasks. `augment` transforms the images of the training stream only (never `episode` or
    `fixed`), drawing from its own generator, checkpointed with the stream: the classes and examples drawn are
    the same with or without it.
    """

    def __init__(
        self,
        dataset: ClassDataset,
        way: int,
        shot: int,
        query: int,
        seed: int = 0,
        augment: Augment | None = None,
    ) -> None:
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
                f"(of {dataset.num_classes})"
            )
        self._all_eligible = len(self.eligible) == dataset.num_classes
        self._ragged = bool((dataset.counts[self.eligible] < dataset.data.shape[1]).any())
        self.generator = torch.Generator().manual_seed(seed)
        self._shape = dataset.example_shape
        episode_bytes = way * need * max(1, math.prod(self._shape)) * 4
        self._block = max(1, min(32, (4 << 20) // episode_bytes))  # tasks drawn at once: ~4 MiB, cache-sized
        self._buffer: TaskBatch | None = None
        self._position = 0
        self._block_state = self.generator.get_state()
        self._blocks = 0  # blocks drawn so far: with the position, where a task stands in the stream
        self._stream_seed = seed  # the seed the training stream started from (restored with its state)
        self._label_cache: dict[int, tuple[Tensor, Tensor]] = {}
        self.augment = augment
        self._augment_generator = augmentation_generator(seed, augment, dataset)
        self._augment_state = self._augment_generator.get_state() if self._augment_generator else None

    def _labels(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """Support and query labels [B, N*K], [B, N*Q]: the same for every draw, so built once per batch size."""
        if batch_size not in self._label_cache:
            labels = torch.arange(self.way)
            self._label_cache[batch_size] = (
                labels.repeat_interleave(self.shot).expand(batch_size, -1).contiguous(),
                labels.repeat_interleave(self.query).expand(batch_size, -1).contiguous(),
            )
        support, query = self._label_cache[batch_size]
        return support.clone(), query.clone()

    def _distinct_classes(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """[B, N] distinct class positions, uniform over ordered N-subsets.

        When N*N <= C, draw N with replacement and redraw the rare rows with a repeat (O(N) numbers a
        row, not O(C)); otherwise take the N largest of C uniform keys.
        """
        classes, way = len(self.eligible), self.way
        if way * way > classes:
            return torch.rand(batch_size, classes, generator=generator).topk(way, dim=1).indices
        picks = torch.randint(classes, (batch_size, way), generator=generator)
        for row, values in enumerate(picks.tolist()):
            while len(set(values)) < way:
                values = torch.randint(classes, (way,), generator=generator).tolist()
                picks[row] = torch.tensor(values)
        return picks

    def _draw(self, batch_size: int, generator: torch.Generator) -> TaskBatch:
        data, way, shot = self.dataset.data, self.way, self.shot
        per_class = data.shape[1]
        picks = self._distinct_classes(batch_size, generator)
        classes = picks if self._all_eligible else self.eligible[picks]
        scores = torch.rand(batch_size, way, per_class, generator=generator)
        if self._ragged:
            scores.masked_fill_(torch.arange(per_class) >= self.dataset.counts[classes].unsqueeze(-1), -1.0)
        rows = scores.topk(shot + self.query, dim=2).indices.add_(classes.unsqueeze(-1) * per_class)  # [B, N, K+Q]
        # one gather of support rows then query rows, so both halves come out contiguous, in their final layout
        index = torch.cat([rows[:, :, :shot].reshape(-1), rows[:, :, shot:].reshape(-1)])
        x = to_float(data.view(-1, *self._shape).index_select(0, index))
        split = batch_size * way * shot
        support_y, query_y = self._labels(batch_size)
        return TaskBatch(
            x[:split].view(batch_size, way * shot, *self._shape),
            support_y,
            x[split:].view(batch_size, way * self.query, *self._shape),
            query_y,
            way,
        )

    def _augmented(self, batch: TaskBatch) -> TaskBatch:
        """The block's images transformed by `augment`, support then query (no-op without one)."""
        if self._augment_generator is None or self.augment is None:
            return batch
        self._augment_state = self._augment_generator.get_state()
        return replace(
            batch,
            support_x=augment_images(self.augment, batch.support_x, self._augment_generator),
            query_x=augment_images(self.augment, batch.query_x, self._augment_generator),
        )

    def _next_block(self) -> TaskBatch:
        """Draw the next block of training tasks into the buffer, and return it."""
        self._block_state = self.generator.get_state()
        first = self._blocks * self._block
        buffer = replace(
            self._augmented(self._draw(self._block, self.generator)),
            task_seeds=torch.tensor(
                [_episode_seed(self._stream_seed ^ _TRAINING_SALT, first + i) for i in range(self._block)]
            ),
        )
        self._buffer, self._blocks, self._position = buffer, self._blocks + 1, 0
        return buffer

    def sample(self, batch_size: int = 1) -> TaskBatch:
        """The next `batch_size` tasks of the training stream.

        The stream is drawn in blocks of tasks (amortising per-call overhead) and handed out in order,
        so it is the same however it is consumed: sample(1) four times gives the tasks of sample(4).
        Returned tensors may be views of the current block: copy them before changing them in place.
        """
        pieces = []
        while batch_size > 0:
            buffer = self._buffer
            if buffer is None or self._position == self._block:
                buffer = self._next_block()
            take = min(batch_size, self._block - self._position)
            pieces.append(buffer.slice(self._position, self._position + take))
            self._position += take
            batch_size -= take
        return pieces[0] if len(pieces) == 1 else TaskBatch.cat(pieces)

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
        """Where the training stream stands: the generators at the start of the current block, and the position."""
        at_boundary = self._buffer is None or self._position == self._block
        state = {
            "generator": self.generator.get_state() if at_boundary else self._block_state,
            "position": 0 if at_boundary else self._position,
            "seed": self._stream_seed,
            "blocks": self._blocks if at_boundary else self._blocks - 1,
        }
        if self._augment_generator is not None:
            state["augment"] = self._augment_generator.get_state() if at_boundary else self._augment_state
        return state

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        if self._augment_generator is not None and "augment" in state:
            self._augment_generator.set_state(state["augment"])
        self._buffer, self._position = None, 0
        self._blocks = state.get("blocks", 0)
        self._stream_seed = state.get("seed", self.seed)
        if state.get("position", 0):
            self._next_block()
            self._position = state["position"]

    def __iter__(self) -> Iterator[TaskBatch]:
        while True:
            yield self.sample()


def augmentation_generator(seed: int, augment: Augment | None, dataset: ClassDataset) -> torch.Generator | None:
    """The generator a training stream's augmentation draws from (None without augmentation); ConfigError when
    the dataset's examples are not images [C, H, W]."""
    if augment is None:
        return None
    if len(dataset.example_shape) != 3:
        raise ConfigError(f"augmentation transforms images [C, H, W]; these examples are {dataset.example_shape}")
    return torch.Generator().manual_seed(_episode_seed(seed ^ _AUGMENT_SALT, 0))


def episodes(
    dataset: ClassDataset, way: int, shot: int, query: int, seed: int = 0, augment: Augment | None = None
) -> EpisodeSampler:
    """A seeded N-way K-shot Q-query sampler over `dataset`; `augment` transforms its training stream's images."""
    return EpisodeSampler(dataset, way, shot, query, seed, augment)
