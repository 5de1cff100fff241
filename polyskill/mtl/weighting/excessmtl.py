"""ExcessMTL: He, Zhou, Zhang, Yun, Xu, Zeng, Chilimbi and Zhao (2024), "Robust multi-task learning with excess risks".

Rule: each task's excess risk is estimated from its gradient g_t and the running sum of its squared gradients
H_t (a diagonal curvature estimate, as in AdaGrad): r_t = g_t . (g_t / sqrt(H_t + 1e-7)), with H_t updated with
this step's g_t first. Each r_t is divided by the task's first estimate, and the task weights (initially 1) take
an exponentiated-gradient step towards the tasks with the larger excess risks, w_t <- w_t exp(eta r_t / r_t(1)),
renormalised to sum to T; the update is w @ G with this step's gradients. Constants (1e-7, the normalisation by
the first estimate, the sum T, eta = 1e-2) are those of the authors' code (LibMTL's ExcessMTL).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import Aggregation
from .lazy_state import LazyStateAggregator

EPS = 1e-7  # in sqrt(H + EPS), as the authors' code


class ExcessMTL(LazyStateAggregator):
    """Excess-risk task weights, updated once per call and applied to this step's gradients.

    Needs the full per-task gradients [T, P]. State: `grad_sq_sum` H [T, P] (T x P values in the gradients'
    dtype, as large as the Jacobian), and in float64 `initial_risk` [T] and `task_weights` [T]. Cost per step
    O(T P). A task's first estimate is taken at the first step where its gradient is non-zero, and that step
    moves no weight for it (for every task at once on the first step: the weights of the first step are ones).
    """

    grad_sq_sum: Tensor
    initial_risk: Tensor
    task_weights: Tensor

    needs_num_tasks = True
    lazy_buffers = ("grad_sq_sum",)

    def __init__(self, num_tasks: int, robust_step_size: float = 1e-2) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ConfigError(f"excessmtl: num_tasks must be a positive integer, got {num_tasks!r}")
        if (
            isinstance(robust_step_size, bool)
            or not isinstance(robust_step_size, (int, float))
            or not math.isfinite(robust_step_size)
            or robust_step_size <= 0
        ):
            raise ConfigError(f"excessmtl: robust_step_size must be a number > 0, got {robust_step_size!r}")
        self.num_tasks, self.robust_step_size = num_tasks, float(robust_step_size)
        self.register_buffer("initial_risk", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("task_weights", torch.ones(num_tasks, dtype=torch.float64))

    def combine(self, jac: Tensor, losses: Tensor) -> Aggregation:
        """Accumulate this step's squared gradients, update the weights, and return w @ G."""
        if jac.dim() != 2 or jac.shape[0] != self.num_tasks or losses.shape != (self.num_tasks,):
            raise ValueError(
                f"excessmtl was built for {self.num_tasks} tasks, got jac {tuple(jac.shape)} and losses "
                f"{tuple(losses.shape)}"
            )
        h = self.sized("grad_sq_sum", jac)
        g = jac.detach().to(h)
        h.add_(g * g)
        risk = (g * g / torch.sqrt(h + EPS)).sum(1).to(self.initial_risk)
        known = self.initial_risk > 0
        scaled = torch.where(known, risk / torch.where(known, self.initial_risk, 1.0), 0.0)
        self.initial_risk.copy_(torch.where(known, self.initial_risk, risk))
        w = self.task_weights * torch.exp(self.robust_step_size * scaled)
        self.task_weights.copy_(w * (self.num_tasks / w.sum()))
        weights = self.task_weights.to(device=jac.device, dtype=jac.dtype, copy=True)
        return Aggregation(weights @ jac.detach(), weights)

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, robust_step_size={self.robust_step_size}"
