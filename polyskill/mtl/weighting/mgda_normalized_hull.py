"""MGDA whose update is the min-norm point of the convex hull of the normalised task gradients g_t / n_t.

Where `mgda` (Sener and Koltun's code) solves the min-norm problem on the normalised gradients and applies the
solution v to the raw gradients (direction = sum_t v_t g_t), this applies it to the normalised ones:
direction = sum_t v_t g_t / n_t, i.e. weights v_t / n_t. With "l2" every task then moves along its unit gradient's
share of the min-norm point, whatever its gradient's scale.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from .mgda import MGDA


class MGDANormalizedHull(MGDA):
    """Weights v_t / n_t for the min-norm solution v of the gradients divided by n_t (default: their norms)."""

    name: ClassVar[str] = "mgda_normalized_hull"

    def __init__(self, normalization: str = "l2", max_iter: int = 250, tol: float = 1e-6) -> None:
        super().__init__(normalization, max_iter, tol)

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        """The weights, for the raw gradients, of the min-norm point of the normalised ones."""
        v, n = self.solve(gram, losses)
        return v / n
