"""Sinusoid regression tasks (Finn et al., 2017): y = A sin(x - phase), one task per (A, phase).

Amplitude in [0.1, 5], phase in [0, pi], inputs uniform in [-5, 5]. A task's K support and Q query points are
drawn independently. Like EpisodeSampler, `sample(B)` continues a seeded stream whose state is checkpointed,
and `episode(i)` / `fixed(n)` give evaluation tasks that depend only on (seed, i).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .episodes import TaskBatch
from .task_stream import TaskStream


class SinusoidTasks(TaskStream):
    """K-shot Q-query sinusoid regression tasks as TaskBatches: x [B, K, 1], float targets y [B, K, 1]."""

    def __init__(
        self,
        shot: int,
        query: int,
        seed: int = 0,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
    ) -> None:
        super().__init__(shot, query, seed)
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range

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
