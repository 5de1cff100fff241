"""Each rank draws its own tasks from its own seeded stream; a single process can draw the same global batch."""

from __future__ import annotations

from typing import Any, Callable

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
