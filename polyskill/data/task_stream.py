"""A seeded stream of few-shot tasks: what every synthetic or data-backed task sampler shares.

`sample(B)` continues a stream whose generator state is checkpointed (so a resumed run draws the same tasks);
`episode(i)` and `fixed(n)` give evaluation tasks that depend only on (seed, i), the same for every model.
Subclasses say how to draw tasks (`_draw`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..errors import ConfigError
from .episodes import TaskBatch, _episode_seed


class TaskStream:
    """Tasks of `shot` support and `query` query examples, drawn by `_draw(B, generator)`."""

    def __init__(self, shot: int, query: int, seed: int = 0) -> None:
        if shot < 1 or query < 0:
            raise ConfigError(f"tasks need shot >= 1 and query >= 0, got shot={shot}, query={query}")
        self.shot, self.query, self.seed = shot, query, seed
        self.generator = torch.Generator().manual_seed(seed)

    def _draw(self, tasks: int, generator: torch.Generator) -> TaskBatch:
        raise NotImplementedError

    def sample(self, batch_size: int = 1) -> TaskBatch:
        """The next `batch_size` tasks of the training stream."""
        return self._draw(batch_size, self.generator)

    def episode(self, index: int) -> TaskBatch:
        """Evaluation task `index`: a function of (seed, index) only."""
        return self._draw(1, torch.Generator().manual_seed(_episode_seed(self.seed, index)))

    def fixed(self, episodes: int, batch_size: int | None = None, start: int = 0) -> Iterator[TaskBatch]:
        """Tasks start..start+episodes-1 in batches of `batch_size` (default 100)."""
        batch_size = batch_size or 100
        for first in range(start, start + episodes, batch_size):
            last = min(first + batch_size, start + episodes)
            yield TaskBatch.cat([self.episode(i) for i in range(first, last)])

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.seed = state["seed"]
        self.generator.set_state(state["generator"])
