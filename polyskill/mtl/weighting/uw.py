"""Uncertainty weighting: Kendall, Gal and Cipolla (2018), "Multi-task learning using uncertainty to weigh losses
for scene geometry and semantics".

Rule: one learnable log-variance s_t per task (initialised at 0), trained with the network on
sum_t exp(-s_t) L_t + s_t; so w_t = exp(-s_t), and a task with a larger loss is given a smaller weight.

Convention: the paper's regression form, L_t / (2 sigma_t^2) + log sigma_t with s_t = log sigma_t^2, is
(1/2)(exp(-s_t) L_t + s_t); its classification form has s_t / 2 instead of s_t. Here both 1/2 factors are
absorbed and every task uses exp(-s_t) L_t + s_t (the common implementation's choice). For fixed losses the
optimum is s_t = log L_t, where the gradient 1 - exp(-s_t) L_t vanishes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ..base import LossWeighting


class UncertaintyWeighting(LossWeighting):
    """w_t = exp(-s_t) with learnable log-variances `log_vars` [T] and `regularizer()` = sum_t s_t.

    The weights keep their autograd graph: the trainer backpropagates sum_t w_t L_t + regularizer(), which
    gives `log_vars` the gradient 1 - exp(-s_t) L_t; `log_vars` must be in the trainer's optimizer.
    """

    needs_num_tasks = True

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ConfigError(f"uw: num_tasks must be a positive integer, got {num_tasks!r}")
        self.log_vars = nn.Parameter(torch.zeros(num_tasks))

    def weights(self, losses: Tensor) -> Tensor:
        """exp(-s_t) [T], with its graph to `log_vars`, in the dtype and on the device of `losses`."""
        if losses.shape != self.log_vars.shape:
            raise ValueError(f"uw was built for {self.log_vars.numel()} tasks, got losses {tuple(losses.shape)}")
        return torch.exp(-self.log_vars).to(device=losses.device, dtype=losses.dtype)

    def regularizer(self, losses: Tensor) -> Tensor:
        """sum_t s_t: what keeps the log-variances from growing without bound."""
        return self.log_vars.sum()
