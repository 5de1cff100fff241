"""GradDrop: Chen, Ngiam, Huang, Luong, Kretzschmar, Chai and Anguelov (2020), "Just pick a sign: optimizing deep
multitask models with gradient sign dropout".

Rule, per coordinate of the per-task gradients g_t: the positive sign purity P = (1 + sum_t g_t / sum_t |g_t|) / 2,
a uniform draw U, and the masks M_t = I[P > U] I[g_t > 0] + I[P < U] I[g_t < 0] keep, at each coordinate, only
the gradients of one sign (positive with probability P). The update is sum_t (l + (1 - l) M_t) g_t, where the leak
l lets a fraction of every original gradient through (l = 0: none). The paper's batch-separated variant (purity
from gradients times the sign of the layer's inputs, summed over the batch) needs the activations and is not
implemented: here P is computed at each coordinate of what `combine` is given, the shared parameters' gradients
or, with `mtl.rep_grad`, those of the shared representation (the paper's setting).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import Aggregation, JacobianAggregator
from .seeded import Seeded


class GradDrop(Seeded, JacobianAggregator):
    """Gradient sign dropout: at each coordinate, one sign is chosen at random (by the gradients' sign purity) and
    the gradients of the other sign are dropped.

    Needs the full per-task gradients [T, P] (each coordinate of the direction reads its own column only, so it
    may run on the representation's gradients). GradDrop has no task-level weights: it masks per coordinate, and
    the weights reported are ones. No state but the random generator, seeded with `seed` and part of `state_dict`
    (extra state), so a resumed run draws the same uniforms. Cost per step O(T P), with P float64 uniforms drawn
    on the CPU.
    """

    acts_per_coordinate = True

    def __init__(self, leak: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        if isinstance(leak, bool) or not isinstance(leak, (int, float)) or not (math.isfinite(leak) and 0 <= leak <= 1):
            raise ConfigError(f"graddrop: leak must be a number in [0, 1], got {leak!r}")
        self.leak = float(leak)
        self.seed_generator("graddrop", seed)

    def draw_uniforms(self, size: int) -> Tensor:
        """`size` float64 uniforms in [0, 1) from the generator (on the CPU)."""
        return torch.rand(size, generator=self.generator, dtype=torch.float64)

    def combine(self, jac: Tensor, losses: Tensor) -> Aggregation:
        """The masked sum of the gradients, with one uniform drawn per coordinate."""
        if jac.dim() != 2 or losses.shape != jac.shape[:1]:
            raise ValueError(
                f"graddrop expects jac [T, P] and losses [T], got {tuple(jac.shape)}, {tuple(losses.shape)}"
            )
        g = jac.detach()
        total, magnitude = g.sum(0).to(torch.float64), g.abs().sum(0).to(torch.float64)
        purity = 0.5 * (1 + torch.where(magnitude > 0, total / magnitude.clamp_min(torch.finfo(total.dtype).tiny), 0.0))
        uniform = self.draw_uniforms(g.shape[1]).to(g.device)
        mask = ((purity > uniform) & (g > 0)) | ((purity < uniform) & (g < 0))
        kept = self.leak + (1 - self.leak) * mask.to(g.dtype)
        direction = (kept * g).sum(0)
        return Aggregation(direction, torch.ones(g.shape[0], dtype=g.dtype, device=g.device))

    def extra_repr(self) -> str:
        return f"leak={self.leak}, seed={self.seed}"
