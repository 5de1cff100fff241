"""FAMO: Liu, Feng, Stone and Liu (2023), "FAMO: fast adaptive multitask optimization".

Rule: task logits xi (initialised at 0), z = softmax(xi). The step descends sum_t z_t log(L_t - L*_t) / c with
c = sum_t z_t / (L_t - L*_t) held constant, i.e. a weighted sum with w_t = z_t / (c (L_t - L*_t)) (summing to 1),
where the minimum losses L* are 0 and 1e-8 is added to every difference (as the paper's code does). Once the
optimiser has stepped, the same batch's new losses give each task's improvement in log loss,
delta_t = log(L_t - L*_t) - log(L'_t - L*_t), and xi takes one Adam step (rate `w_lr`, L2 weight decay `gamma`,
betas (0.9, 0.999), eps 1e-8: torch.optim.Adam's rule) on the gradient J_softmax(xi)^T delta, so that tasks that
improved least gain weight.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import LossWeighting

EPS = 1e-8  # added to L_t - L*_t, as the paper's code does
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class FAMO(LossWeighting):
    """FAMO weights from the losses before the step and the same batch's losses after it.

    Needs the losses only (and `after_step`'s): O(T) per step, no per-task gradients. State: the logits `xi`, the
    losses the last `weights` call saw, and Adam's moments and step count, all in float64 buffers (xi is not an
    nn.Parameter: the trainer's optimiser must not move it), so a checkpoint resumes exactly.
    """

    xi: Tensor
    exp_avg: Tensor
    exp_avg_sq: Tensor
    adam_steps: Tensor
    last_losses: Tensor
    pending: Tensor

    needs_num_tasks = True
    needs_losses_after_step = True

    def __init__(self, num_tasks: int, w_lr: float = 0.025, gamma: float = 1e-3) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ConfigError(f"famo: num_tasks must be a positive integer, got {num_tasks!r}")
        if isinstance(w_lr, bool) or not isinstance(w_lr, (int, float)) or not math.isfinite(w_lr) or w_lr <= 0:
            raise ConfigError(f"famo: w_lr must be a number > 0, got {w_lr!r}")
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma < 0:
            raise ConfigError(f"famo: gamma must be a number >= 0, got {gamma!r}")
        self.num_tasks, self.w_lr, self.gamma = num_tasks, float(w_lr), float(gamma)
        for name in ("xi", "exp_avg", "exp_avg_sq", "last_losses"):
            self.register_buffer(name, torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("adam_steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("pending", torch.zeros((), dtype=torch.bool))

    def _gaps(self, losses: Tensor) -> Tensor:
        """L_t - L*_t + 1e-8 in float64 on the state's device, for non-negative losses [T]."""
        if losses.shape != (self.num_tasks,):
            raise ValueError(f"famo was built for {self.num_tasks} tasks, got losses {tuple(losses.shape)}")
        if bool((losses < 0).any()) or not bool(torch.isfinite(losses).all()):
            raise ValueError(f"famo needs finite non-negative losses (their logarithm is taken), got {losses.tolist()}")
        return losses.detach().to(device=self.xi.device, dtype=self.xi.dtype) + EPS

    def weights(self, losses: Tensor) -> Tensor:
        """w_t = z_t / (c (L_t - L*_t)) [T]; `losses` are kept for the next `after_step`."""
        gaps = self._gaps(losses)
        z = torch.softmax(self.xi, dim=0)
        w = z / gaps / (z / gaps).sum()
        self.last_losses.copy_(losses.detach())
        self.pending.fill_(True)
        return w.to(device=losses.device, dtype=losses.dtype)

    def after_step(self, losses: Tensor) -> None:
        """One Adam step on xi from the improvement between the last `weights` call's losses and `losses`."""
        if not bool(self.pending):
            raise RuntimeError("famo: after_step without a weights call since the last one")
        delta = torch.log(self.last_losses + EPS) - torch.log(self._gaps(losses))
        z = torch.softmax(self.xi, dim=0)
        grad = z * (delta - z @ delta) + self.gamma * self.xi
        self.adam_steps += 1
        step = int(self.adam_steps)
        self.exp_avg.mul_(BETAS[0]).add_(grad, alpha=1 - BETAS[0])
        self.exp_avg_sq.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
        denom = (self.exp_avg_sq.sqrt() / math.sqrt(1 - BETAS[1] ** step)).add_(ADAM_EPS)
        self.xi.addcdiv_(self.exp_avg, denom, value=-self.w_lr / (1 - BETAS[0] ** step))
        self.pending.fill_(False)

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, w_lr={self.w_lr}, gamma={self.gamma}"
