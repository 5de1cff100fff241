"""Dynamic weight average: Liu, Johns and Davison (2019), "End-to-end multi-task learning with attention" (MTAN).

Rule: w_t = T softmax_t(r_t / temperature) with r_t = Lbar_t(k-1) / Lbar_t(k-2), the ratio of task t's mean
losses over the two previous windows; w_t = 1 during the first two windows. The paper's windows are epochs;
here a window is `period` training steps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import LossWeighting

_TINY = 1e-12


class DynamicWeightAverage(LossWeighting):
    """DWA task weights from the losses the trainer reports, one call per training step.

    The weights of a step use only the windows completed before it; the step's losses then go into the current
    window. State (`window_sum`, `window_means` = the means of windows k-2 and k-1, `steps`) is in buffers.
    """

    window_sum: Tensor
    window_means: Tensor
    steps: Tensor

    needs_num_tasks = True

    def __init__(self, num_tasks: int, temperature: float = 2.0, period: int = 100) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ConfigError(f"dwa: num_tasks must be a positive integer, got {num_tasks!r}")
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not math.isfinite(temperature)
            or temperature <= 0
        ):
            raise ConfigError(f"dwa: temperature must be a number > 0, got {temperature!r}")
        if isinstance(period, bool) or not isinstance(period, int) or period < 1:
            raise ConfigError(f"dwa: period must be a positive integer (steps per window), got {period!r}")
        self.num_tasks = num_tasks
        self.temperature = float(temperature)
        self.period = period
        self.register_buffer("window_sum", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("window_means", torch.ones(2, num_tasks, dtype=torch.float64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def weights(self, losses: Tensor) -> Tensor:
        """This step's weights [T] (summing to T), then `losses` are added to the current window."""
        if losses.shape != (self.num_tasks,):
            raise ValueError(f"dwa was built for {self.num_tasks} tasks, got losses {tuple(losses.shape)}")
        ratio = self.window_means[1] / self.window_means[0].clamp_min(_TINY)
        dynamic = self.num_tasks * torch.softmax(ratio / self.temperature, dim=0)
        w = torch.where(self.steps >= 2 * self.period, dynamic, torch.ones_like(dynamic))

        total = self.window_sum + losses.detach().to(self.window_sum)
        window_done = (self.steps + 1) % self.period == 0
        rolled = torch.stack([self.window_means[1], total / self.period])
        self.window_means.copy_(torch.where(window_done, rolled, self.window_means))
        self.window_sum.copy_(torch.where(window_done, torch.zeros_like(total), total))
        self.steps += 1
        return w.to(device=losses.device, dtype=losses.dtype)
