"""DB-MTL: Lin, Jiang, Ye, Zhang, Chen, Chen, Liu, Tsang and Kwok (2023), "Dual-balancing for multi-task learning".

Loss balancing: every task trains on log(L_t + 1e-8), whose gradient is g_t / (L_t + 1e-8). Gradient balancing:
an exponential moving average of those gradients, Ghat_t <- g_t + beta_k (Ghat_t - g_t) with
beta_k = beta / k^beta_sigma at step k (from Ghat = 0), and the update
d = sum_t alpha_t Ghat_t, alpha_t = max_s ||Ghat_s|| / ||Ghat_t||: every task's averaged gradient rescaled to the
largest norm. The constants are those of the paper's code (LibMTL's DB_MTL), whose defaults beta = 0.9 and
beta_sigma = 0 give a constant rate.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import Aggregation
from .lazy_state import LazyStateAggregator

EPS = 1e-8  # in log(L + EPS), as the paper's code


class DBMTL(LazyStateAggregator):
    """Dual-balancing: the log losses' gradients averaged over steps, each rescaled to the largest average's norm.

    Needs the full per-task gradients [T, P] and the losses. State: `grad_ema` [T, P] (T x P values in the
    gradients' dtype, as large as the Jacobian) and the step count. Cost per step O(T P). The weights reported are
    the alpha_t of the averaged gradients, not of this step's: the direction is alpha @ Ghat. A task whose average
    is zero gets alpha 0 (the paper's ratio is undefined there; its code divides by the norm plus 1e-8).
    """

    grad_ema: Tensor
    steps: Tensor

    needs_num_tasks = True
    lazy_buffers = ("grad_ema",)

    def __init__(self, num_tasks: int, beta: float = 0.9, beta_sigma: float = 0.0) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ConfigError(f"dbmtl: num_tasks must be a positive integer, got {num_tasks!r}")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
            raise ConfigError(f"dbmtl: beta must be a number in [0, 1), got {beta!r}")
        if (
            isinstance(beta_sigma, bool)
            or not isinstance(beta_sigma, (int, float))
            or not math.isfinite(beta_sigma)
            or beta_sigma < 0
        ):
            raise ConfigError(f"dbmtl: beta_sigma must be a number >= 0, got {beta_sigma!r}")
        self.num_tasks, self.beta, self.beta_sigma = num_tasks, float(beta), float(beta_sigma)
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def combine(self, jac: Tensor, losses: Tensor) -> Aggregation:
        """Advance the average with this step's log-loss gradients; the direction sum_t alpha_t Ghat_t."""
        if jac.dim() != 2 or jac.shape[0] != self.num_tasks or losses.shape != (self.num_tasks,):
            raise ValueError(
                f"dbmtl was built for {self.num_tasks} tasks, got jac {tuple(jac.shape)} and losses "
                f"{tuple(losses.shape)}"
            )
        if bool((losses < 0).any()) or not bool(torch.isfinite(losses).all()):
            raise ValueError(f"dbmtl needs finite non-negative losses (it takes their log), got {losses.tolist()}")
        ema = self.sized("grad_ema", jac)
        self.steps += 1
        rate = self.beta / int(self.steps) ** self.beta_sigma
        g = jac.detach().to(ema) / (losses.detach().to(ema) + EPS)[:, None]
        ema.copy_(g + rate * (ema - g))
        norms = ema.norm(dim=1).to(torch.float64)
        alpha = torch.where(norms > 0, norms.max() / norms.clamp_min(torch.finfo(norms.dtype).tiny), 0.0)
        direction = alpha.to(ema.dtype) @ ema
        return Aggregation(direction.to(jac), alpha.to(device=jac.device, dtype=jac.dtype))

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, beta={self.beta}, beta_sigma={self.beta_sigma}"
