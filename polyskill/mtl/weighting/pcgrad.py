"""PCGrad, "Gradient surgery for multi-task learning" (Yu, Kumar, Gupta, Levine, Hausman, Finn, 2020).

Each task gradient g_i is projected, against the other tasks' original gradients g_j taken in a random
order, onto the normal plane of every g_j it conflicts with (g_i^PC . g_j < 0):
g_i^PC -= (g_i^PC . g_j / ||g_j||^2) g_j. The update is the sum of the projected gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..base import Aggregator
from .seeded import Seeded


def pcgrad_coefficients(gram: Tensor, order: Tensor) -> Tensor:
    """The coefficients C [T, T] of the projected gradients, g_i^PC = sum_k C[i, k] g_k.

    `gram` is G G^T [T, T]; `order` [T, T-1] lists, for each task i, the other tasks in the order i is
    projected against them. Every projection subtracts a multiple of an original gradient, so C starts at
    the identity and only the inner products g_i^PC . g_j = C_i M_j are needed. A zero gradient g_j (zero
    norm) is never projected on: its inner products are zero, so it conflicts with nothing.
    """
    t = gram.shape[0]
    coef = torch.eye(t, dtype=gram.dtype, device=gram.device)
    rows = torch.arange(t, device=gram.device)
    order = order.to(gram.device)
    sq_norms = gram.diagonal()
    for k in range(t - 1):
        j = order[:, k]
        dots = (coef * gram[:, j].T).sum(1)
        norms = sq_norms[j]
        conflict = (dots < 0) & (norms > 0)
        step = torch.where(
            conflict, dots / torch.where(norms > 0, norms, torch.ones_like(norms)), torch.zeros_like(dots)
        )
        coef[rows, j] -= step
    return coef


def draw_orders(num_tasks: int, generator: torch.Generator) -> Tensor:
    """For each task i, a random order [T, T-1] of the other tasks, drawn from `generator` (PCGrad's and GradVac's
    projection orders). Advances the generator when T >= 3 (with two tasks there is one order)."""
    others = torch.arange(num_tasks).repeat(num_tasks, 1)
    others = others[~torch.eye(num_tasks, dtype=torch.bool)].view(num_tasks, num_tasks - 1)
    if num_tasks < 3:
        return others
    perms = torch.rand(num_tasks, num_tasks - 1, generator=generator).argsort(1)
    return others.gather(1, perms)


class PCGrad(Seeded, Aggregator):
    """Projecting conflicting gradients: weights are the column sums of the projection coefficients.

    The orders are drawn from a `torch.Generator` seeded with `seed`; its state is part of `state_dict`
    (extra state), so a run resumed from a checkpoint draws the same orders as the uninterrupted run.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed_generator("pcgrad", seed)

    def draw_order(self, num_tasks: int) -> Tensor:
        """For each task i, a random order [T, T-1] of the other tasks (see `draw_orders`)."""
        return draw_orders(num_tasks, self.generator)

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        coef = pcgrad_coefficients(gram, self.draw_order(gram.shape[0]))
        return coef.sum(0)

    def extra_repr(self) -> str:
        return f"seed={self.seed}"
