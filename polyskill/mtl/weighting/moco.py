"""MoCo: Fernando, Shen, Liu, Chaudhury, Murugesan and Chen (2023), "Mitigating gradient bias in multi-objective
learning: a provably convergent approach".

Rule, at step k: a tracking variable Y [T, P] follows the per-task gradients, y_t <- y_t - beta_k (y_t - h_t) with
h_t = L_t g_t / (||g_t|| + 1e-8) (each gradient rescaled to norm L_t, as the authors' multi-task code does); the
weights take one projected gradient step on min_lambda (1/2)||Y^T lambda||^2 + (rho/2)||lambda||^2 over the
simplex, lambda <- Proj_simplex(lambda - gamma_k (Y Y^T + rho I) lambda), from lambda = 1/T; the update is
Y^T lambda. Step sizes beta_k = beta / k^beta_sigma and gamma_k = gamma / k^gamma_sigma. The projection is the
paper's; LibMTL's MoCo uses softmax(lambda - gamma_k (Y Y^T + rho I) lambda) instead. Defaults are LibMTL's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import Aggregation, project_simplex
from .lazy_state import LazyStateAggregator

EPS = 1e-8  # in L_t g_t / (||g_t|| + EPS)


def _option(name: str, value: object, low: float, high: float = math.inf, low_open: bool = False) -> float:
    """`value` as a float if it is a finite number in [low, high] ((low, high] when `low_open`), else ConfigError."""
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    if not (math.isfinite(number) and (number > low if low_open else number >= low) and number <= high):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{']' if math.isfinite(high) else ')'}"
        raise ConfigError(f"moco: {name} must be a number in {interval}, got {value!r}")
    return number


class MoCo(LazyStateAggregator):
    """Stochastic multi-objective gradient correction: MGDA-like weights on gradients tracked over steps.

    Needs the full per-task gradients [T, P] and the losses. State: `tracking` Y [T, P] (T x P values in the
    gradients' dtype, as large as the Jacobian), `lambd` [T] (float64) and the step count. Cost per step O(T^2 P)
    (the Gram matrix of Y) and O(T log T) for the projection. The weights reported are lambda, the weights of the
    tracked gradients Y, not of this step's gradients.
    """

    tracking: Tensor
    lambd: Tensor
    steps: Tensor

    needs_num_tasks = True
    lazy_buffers = ("tracking",)

    def __init__(
        self,
        num_tasks: int,
        beta: float = 0.5,
        beta_sigma: float = 0.5,
        gamma: float = 0.1,
        gamma_sigma: float = 0.5,
        rho: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ConfigError(f"moco: num_tasks must be a positive integer, got {num_tasks!r}")
        self.num_tasks = num_tasks
        self.beta = _option("beta", beta, 0.0, 1.0, low_open=True)
        self.beta_sigma = _option("beta_sigma", beta_sigma, 0.0)
        self.gamma = _option("gamma", gamma, 0.0, low_open=True)
        self.gamma_sigma = _option("gamma_sigma", gamma_sigma, 0.0)
        self.rho = _option("rho", rho, 0.0)
        self.register_buffer("lambd", torch.full((num_tasks,), 1.0 / num_tasks, dtype=torch.float64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def combine(self, jac: Tensor, losses: Tensor) -> Aggregation:
        """Advance Y and lambda with this step's gradients and losses; the direction Y^T lambda."""
        if jac.dim() != 2 or jac.shape[0] != self.num_tasks or losses.shape != (self.num_tasks,):
            raise ValueError(
                f"moco was built for {self.num_tasks} tasks, got jac {tuple(jac.shape)} and losses "
                f"{tuple(losses.shape)}"
            )
        y = self.sized("tracking", jac)
        self.steps += 1
        k = int(self.steps)
        g = jac.detach().to(y)
        h = g / (g.norm(dim=1) + EPS)[:, None] * losses.detach().to(y)[:, None]
        y.sub_((self.beta / k**self.beta_sigma) * (y - h))
        lambd = self.lambd
        gram = (y @ y.T).to(lambd) + self.rho * torch.eye(self.num_tasks, dtype=lambd.dtype, device=lambd.device)
        lambd.copy_(project_simplex(lambd - (self.gamma / k**self.gamma_sigma) * (gram @ lambd)))
        direction = lambd.to(y) @ y
        return Aggregation(direction.to(jac), lambd.to(device=jac.device, dtype=jac.dtype, copy=True))

    def extra_repr(self) -> str:
        return (
            f"num_tasks={self.num_tasks}, beta={self.beta}, beta_sigma={self.beta_sigma}, gamma={self.gamma}, "
            f"gamma_sigma={self.gamma_sigma}, rho={self.rho}"
        )
