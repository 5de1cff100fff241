"""Sinusoid regression tasks (Finn et al., 2017): y = A sin(x - phase), one task per (A, phase).

Amplitude in [0.1, 5], phase in [0, pi], inputs uniform in [-5, 5]. A task's K support and Q query points are
drawn independently. Like EpisodeSampler, `sample(B)` continues a seeded stream whose state is checkpointed,
and `episode(i)` / `fixed(n)` give evaluation tasks that depend only on (seed, i).
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import Tensor

from ..errors import ConfigError
from .episodes import TaskBatch, _episode_seed


class SinusoidTasks:
    """K-shot Q-query sinusoid regression tasks as TaskBatches: x [B, K, 1], float targets y [B, K, 1]."""

    def __init__(self, shot: int, query: int, seed: int = 0, amplitude: tuple[float, float] = (0.1, 5.0),
                 phase: tuple[float, float] = (0.0, math.pi), x_range: tuple[float, float] = (-5.0, 5.0)) -> None:
        if shot < 1 or query < 0:
            raise ConfigError(f"sinusoid tasks need shot >= 1 and query >= 0, got shot={shot}, query={query}")
        self.shot, self.query, self.seed = shot, query, seed
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range
        self.generator = torch.Generator().manual_seed(seed)

    @staticmethod
    def _uniform(shape: tuple[int, ...], bounds: tuple[float, float], generator: torch.Generator) -> Tensor:
        low, high = bounds
        return low + (high - low) * torch.rand(shape, generator=generator)

    def draw_functions(self, tasks: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Amplitudes and phases [tasks, 1, 1]."""
        amplitude = self._uniform((tasks, 1, 1), self.amplitude, generator)
        return amplitude, self._uniform((tasks, 1, 1), self.phase, generator)

    def _draw(self, tasks: int, generator: torch.Generator) -> TaskBatch:
        amplitude, phase = self.draw_functions(tasks, generator)
        x = self._uniform((tasks, self.shot + self.query, 1), self.x_range, generator)
        y = amplitude * torch.sin(x - phase)
        s = self.shot
        return TaskBatch(x[:, :s], y[:, :s], x[:, s:], y[:, s:], way=1)

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
