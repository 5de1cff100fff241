"""A task's learning strategy, generated from what the meta-learner read for it: a FiLM modulation of the
shared initialisation and the inner learning rates of the task-specific learner.

Both are bounded: a FiLM scale gamma = 1 + tanh(.) lies in (0, 2), a rate within a factor `rate_range` of the
base rate. Unbounded, the outer optimiser raises scales and rates until some task's inner loop diverges.

The generator starts near the identity (gamma = 1, beta = 0, every rate equal to the base rate), so that an
untrained task-conditioned learner behaves like MAML and learns to depart from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..nn.film import FilmSite

RATES = ("fixed", "per_layer", "per_parameter")


@dataclass
class Strategy:
    """Per task [B]: FiLM scale and shift per site ([B, features] each) and the inner rates per adapted
    parameter (broadcastable to [B, *shape]; None: the inner loop's fixed rate)."""

    gamma: list[Tensor]
    beta: list[Tensor]
    rates: dict[str, Tensor] | None


def _key(name: str) -> str:
    return name.replace(".", "-")


class StrategyGenerator(nn.Module):
    """Maps a task's read-out [B, in_dim] to its Strategy.

    Rates are positive and bounded by construction: rate = base_lr * rate_range ** tanh(u), within
    [base_lr / rate_range, base_lr * rate_range], one u per task and adapted tensor (`per_layer`; bounded so
    that no task's inner loop can diverge), times a learned positive per-element factor exp(s) for `per_parameter`
    (Meta-SGD's per-parameter rates, conditioned on the task by the per-layer factor); `fixed` leaves the
    inner loop's rate. Without `sites` there is no FiLM.
    """

    def __init__(
        self,
        in_dim: int,
        sites: list[FilmSite],
        shapes: dict[str, torch.Size],
        base_lr: float,
        rates: str = "per_layer",
        rate_range: float = 2.0,
        init_scale: float = 1e-2,
    ) -> None:
        super().__init__()
        if rates not in RATES:
            raise ValueError(f"rates must be one of {', '.join(RATES)}, got {rates!r}")
        if base_lr <= 0 or rate_range < 1:
            raise ValueError(f"the base inner rate must be > 0 and rate_range >= 1, got {base_lr}, {rate_range}")
        self.log_range = math.log(rate_range)
        self.sites, self.shapes, self.base_lr, self.mode = sites, dict(shapes), base_lr, rates
        self.film = nn.Linear(in_dim, 2 * sum(s.features for s in sites)) if sites else None
        self.rate = nn.Linear(in_dim, len(shapes)) if rates != "fixed" else None
        for layer in (self.film, self.rate):
            if layer is not None:
                nn.init.normal_(layer.weight, std=init_scale)
                nn.init.zeros_(layer.bias)
        self.scales = nn.ParameterDict(
            {_key(n): nn.Parameter(torch.zeros(shape)) for n, shape in shapes.items()}
            if rates == "per_parameter"
            else {}
        )

    def forward(self, read: Tensor) -> Strategy:
        gamma: list[Tensor] = []
        beta: list[Tensor] = []
        if self.film is not None:
            out = self.film(read)
            sizes = [s.features for s in self.sites]
            scale, shift = out.split([sum(sizes), sum(sizes)], dim=-1)
            gamma = [1 + torch.tanh(g) for g in scale.split(sizes, dim=-1)]
            beta = list(shift.split(sizes, dim=-1))
        if self.rate is None:
            return Strategy(gamma, beta, None)
        factors = torch.exp(self.log_range * torch.tanh(self.rate(read)))  # [B, tensors], 1 at u = 0
        rates = {}
        for i, (name, shape) in enumerate(self.shapes.items()):
            rate = self.base_lr * factors[:, i].view(-1, *([1] * len(shape)))
            if self.mode == "per_parameter":
                rate = rate * self.scales[_key(name)].exp()
            rates[name] = rate
        return Strategy(gamma, beta, rates)
