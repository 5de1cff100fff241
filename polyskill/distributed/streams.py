"""Each rank draws its own tasks (or multi-task batches) from its own seeded stream; a single process can draw the
same global batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..data.episodes import TaskBatch

_MIX = 0x9E3779B97F4A7C15  # an odd 64-bit constant: streams of different ranks never share a seed with rank 0's


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank `rank`'s task stream; rank 0 keeps the run's seed, so one process trains as before."""
    return seed if rank == 0 else (seed + rank * _MIX) % 2**63


class ShardedStream:
    """The streams of ranks `ranks` (all of them in a single-process reference, one on each rank): `sample(B)`
    concatenates B / len(ranks) tasks of each, in rank order, so a global meta-batch is the same tasks whether
    one process draws it or every rank draws its share."""

    def __init__(self, make: Callable[[int], Any], seed: int, ranks: list[int]) -> None:
        self.streams = [make(rank_seed(seed, rank)) for rank in ranks]

    def sample(self, batch_size: int = 1) -> TaskBatch:
        if batch_size % len(self.streams):
            raise ValueError(f"a meta-batch of {batch_size} does not split evenly over {len(self.streams)} streams")
        share = batch_size // len(self.streams)
        batches = [stream.sample(share) for stream in self.streams]
        return batches[0] if len(batches) == 1 else TaskBatch.cat(batches)

    def state_dict(self) -> dict:
        return {"streams": [stream.state_dict() for stream in self.streams]}

    def load_state_dict(self, state: dict) -> None:
        for stream, saved in zip(self.streams, state["streams"], strict=True):
            stream.load_state_dict(saved)

    def __getattr__(self, name: str) -> Any:  # fixed(), episode(), shot, ...: the first stream's
        return getattr(self.__dict__["streams"][0], name)


class ShardedBatches:
    """The multi-task batch sources of ranks `ranks` (`make(seed)`, a `MultiTaskBatches`): `sample()` joins one
    batch of each, in rank order, into the global batch the ranks share. Dense batches are stacked; partitioned
    ones (task by task, as `multitask_backward` reads them) are joined task by task, so task i's rows are rank
    0's rows of task i, then rank 1's, and the layout stays partitioned."""

    def __init__(self, make: Callable[[int], Any], seed: int, ranks: list[int]) -> None:
        self.streams = [make(rank_seed(seed, rank)) for rank in ranks]

    def sample(self) -> tuple[Tensor, Tensor]:
        batches = [stream.sample() for stream in self.streams]
        if len(batches) == 1:
            return batches[0]
        xs, ys = zip(*batches, strict=True)
        if not self.partitioned:
            return torch.cat(xs), torch.cat(ys)
        t = len(self.streams[0].data.tasks)

        def join(parts: tuple[Tensor, ...]) -> Tensor:
            return torch.cat([p.reshape(t, -1, *p.shape[1:]) for p in parts], 1).reshape(-1, *parts[0].shape[1:])

        return join(xs), join(ys)

    def state_dict(self) -> dict:
        return {"streams": [stream.state_dict() for stream in self.streams]}

    def load_state_dict(self, state: dict) -> None:
        for stream, saved in zip(self.streams, state["streams"], strict=True):
            stream.load_state_dict(saved)

    def __getattr__(self, name: str) -> Any:  # partitioned, data, ...: the first stream's
        return getattr(self.__dict__["streams"][0], name)
