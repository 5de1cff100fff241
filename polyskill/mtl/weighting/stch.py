"""Smooth Tchebycheff scalarisation: Lin, Zhang, Yang, Liu, Wang and Zhang (2024), "Smooth Tchebycheff scalarization for
multi-objective optimization".

Rule: minimise S(L) = T mu log sum_t exp(log(L_t / z_t) / mu), a smooth maximum (temperature `mu`) of the log
losses relative to a nadir vector z (equal preferences). As a weighted sum with the same gradient,
w_t = dS/dL_t = T softmax_t(log(L / z) / mu) / L_t. z is the mean of the losses over a warm-up of `warmup_steps`
steps, during which sum_t log L_t is minimised (w_t = 1 / L_t). The factor T and the warm-up's objective are those
of the multi-task code of the paper's authors (as in LibMTL); their warm-up is counted in epochs, and their nadir
vector is the mean over the warm-up's last epoch, where here it is the mean over the whole warm-up.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import LossWeighting

FLOOR = 1e-12  # a loss of exactly zero (a float32 cross-entropy that underflowed) is read as this


class SmoothTchebycheff(LossWeighting):
    """STCH weights from the losses, one call per training step.

    Needs the losses only; O(T) per step; state `steps`, `loss_sum` [T] and `nadir` [T] in float64 buffers.
    `warmup_steps` = 0 starts the scalarisation at once with z = 1. Losses must be non-negative (their logarithm
    is taken); zero is floored at 1e-12.
    """

    steps: Tensor
    loss_sum: Tensor
    nadir: Tensor

    needs_num_tasks = True

    def __init__(self, num_tasks: int, mu: float = 1.0, warmup_steps: int = 100) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ConfigError(f"stch: num_tasks must be a positive integer, got {num_tasks!r}")
        if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not math.isfinite(mu) or mu <= 0:
            raise ConfigError(f"stch: mu must be a number > 0, got {mu!r}")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ConfigError(f"stch: warmup_steps must be a non-negative integer, got {warmup_steps!r}")
        self.num_tasks, self.mu, self.warmup_steps = num_tasks, float(mu), warmup_steps
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("loss_sum", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("nadir", torch.ones(num_tasks, dtype=torch.float64))

    def scalarised_weights(self, losses: Tensor) -> Tensor:
        """dS/dL [T] at `losses` (float64) for the current nadir vector."""
        scaled = torch.log(losses / self.nadir) / self.mu
        return self.num_tasks * torch.softmax(scaled, dim=0) / losses

    def weights(self, losses: Tensor) -> Tensor:
        """1 / L_t during the warm-up (whose losses are averaged into z when it ends), then dS/dL_t."""
        if losses.shape != (self.num_tasks,):
            raise ValueError(f"stch was built for {self.num_tasks} tasks, got losses {tuple(losses.shape)}")
        if bool((losses < 0).any()) or not bool(torch.isfinite(losses).all()):
            raise ValueError(f"stch needs finite non-negative losses (their logarithm is taken), got {losses.tolist()}")
        store = self.loss_sum
        l64 = losses.detach().to(device=store.device, dtype=store.dtype).clamp_min(FLOOR)
        if int(self.steps) >= self.warmup_steps:
            w = self.scalarised_weights(l64)
        else:
            w = 1.0 / l64
            store += l64
            if int(self.steps) + 1 == self.warmup_steps:
                self.nadir.copy_(store / self.warmup_steps)
        self.steps += 1
        return w.to(device=losses.device, dtype=losses.dtype)

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, mu={self.mu}, warmup_steps={self.warmup_steps}"
