"""Multimodal few-shot regression (after Vuorio et al., 2019): each task is a function from one of several
families, so one shared initialisation (MAML) has to serve very different shapes.

Families, in the order `modes` takes them (2: sinusoid and linear, 3: + quadratic, 5: + |x| and tanh):

- sinusoid  A sin(x - p) + 0,  A in [0.1, 5], p in [0, pi]
- linear    a x + b,           a in [-3, 3],  b in [-3, 3]
- quadratic a (x - c)^2 + b,   a in [-0.15, 0.15], c in [-3, 3], b in [-3, 3]
- l1        a |x - c| + b,     a in [-1, 1],  c in [-3, 3], b in [-3, 3]
- tanh      a tanh(x - c) + b, a in [-3, 3],  c in [-3, 3], b in [-3, 3]

Inputs are uniform in [-5, 5]; Gaussian noise of standard deviation `noise` (default 0.3) is added to every
target. The family of a task is uniform over the `modes` families. As SinusoidTasks, `sample(B)` continues a
seeded stream and `episode(i)` / `fixed(n)` give evaluation tasks fixed by (seed, i).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError
from .episodes import TaskBatch, _episode_seed
from .sinusoid import SinusoidTasks

FAMILIES = ("sinusoid", "linear", "quadratic", "l1", "tanh")


def family_values(family: int, x: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Noise-free targets of family index `family` with scale a, offset b and centre (or phase) c."""
    name = FAMILIES[family]
    if name == "sinusoid":
        return a * torch.sin(x - c)
    if name == "linear":
        return a * x + b
    if name == "quadratic":
        return a * (x - c) ** 2 + b
    if name == "l1":
        return a * (x - c).abs() + b
    return a * torch.tanh(x - c) + b


SCALES = {
    "sinusoid": (0.1, 5.0),
    "linear": (-3.0, 3.0),
    "quadratic": (-0.15, 0.15),
    "l1": (-1.0, 1.0),
    "tanh": (-3.0, 3.0),
}
CENTRES = {"sinusoid": (0.0, math.pi)}


class MultimodalTasks(SinusoidTasks):
    """K-shot Q-query regression tasks drawn from the first `modes` families: x [B, K, 1], y [B, K, 1]."""

    def __init__(
        self,
        shot: int,
        query: int,
        modes: int = 5,
        seed: int = 0,
        noise: float = 0.3,
        x_range: tuple[float, float] = (-5.0, 5.0),
    ) -> None:
        super().__init__(shot, query, seed=seed, x_range=x_range)
        if not 1 <= modes <= len(FAMILIES):
            raise ConfigError(f"multimodal regression has 1 to {len(FAMILIES)} modes, got {modes}")
        if noise < 0:
            raise ConfigError(f"the noise level must be >= 0, got {noise}")
        self.modes, self.noise = modes, noise

    def draw_labelled(self, tasks: int, generator: torch.Generator) -> tuple[TaskBatch, Tensor]:
        """`tasks` tasks and the family index of each [tasks]."""
        family = torch.randint(self.modes, (tasks,), generator=generator)
        x = self._uniform((tasks, self.shot + self.query, 1), self.x_range, generator)
        y = torch.empty_like(x)
        scale = self._uniform((tasks, 1, 1), (0.0, 1.0), generator)
        offset = self._uniform((tasks, 1, 1), (-3.0, 3.0), generator)
        centre = self._uniform((tasks, 1, 1), (-3.0, 3.0), generator)
        for f in range(self.modes):
            rows = family == f
            if rows.any():
                name = FAMILIES[f]
                low, high = SCALES[name]
                c = centre[rows]
                if name in CENTRES:
                    c_low, c_high = CENTRES[name]
                    c = c_low + (c - (-3.0)) / 6.0 * (c_high - c_low)
                y[rows] = family_values(f, x[rows], low + (high - low) * scale[rows], offset[rows], c)
        y = y + self.noise * torch.randn(y.shape, generator=generator)
        s = self.shot
        return TaskBatch(x[:, :s], y[:, :s], x[:, s:], y[:, s:], way=1), family

    def _draw(self, tasks: int, generator: torch.Generator) -> TaskBatch:
        return self.draw_labelled(tasks, generator)[0]

    def labelled(self, tasks: int, seed: int) -> tuple[TaskBatch, Tensor]:
        """`tasks` fixed tasks of seed `seed` and their families (for probing task embeddings)."""
        return self.draw_labelled(tasks, torch.Generator().manual_seed(_episode_seed(self.seed, seed)))
