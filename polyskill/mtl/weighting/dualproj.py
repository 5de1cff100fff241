"""DualProj, from "Jacobian descent for multi-objective optimization" (Quinton and Rey, 2024), after the projection
of "Gradient episodic memory for continual learning" (Lopez-Paz and Ranzato, 2017, eq. 11).

The preference-weighted combination of the task gradients is projected onto the dual cone C = {x : G x >= 0}:

    d = pi_C(p^T G) = v^T G,   v = argmin_{v >= p} v^T (G G^T) v

(Proposition 1 of the UPGrad paper). With the default p_t = 1/T, d is the projection of the mean gradient, as in
torchjd. d conflicts with no task (G d >= 0) and is p^T G itself when that conflicts with none.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ..base import Aggregator
from .dual_cone import dual_cone_weights
from .upgrad import parse_pref_vector, preferences


class DualProj(Aggregator):
    """Projection of the preference-weighted gradient onto the dual cone: the weights v.

    Needs the Gram matrix only; no state. Cost per step: one box-constrained quadratic program on the [T, T] Gram
    matrix (`dual_cone_weights`), O(k^3) per block-pivoting iteration for a free set of size k <= T, besides the
    T x P Jacobian the step computes anyway. The projection is exact (torchjd adds 1e-4 I to the trace-normalised
    Gram matrix first).
    """

    def __init__(self, pref_vector: Sequence[float] | None = None) -> None:
        super().__init__()
        self.pref_vector = parse_pref_vector("dualproj", pref_vector)

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        p = preferences("dualproj", self.pref_vector, gram)
        v = dual_cone_weights(gram.detach(), p)
        return v.to(device=gram.device, dtype=gram.dtype)

    def extra_repr(self) -> str:
        return f"pref_vector={self.pref_vector}"
