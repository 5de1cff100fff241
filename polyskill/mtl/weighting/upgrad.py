"""UPGrad, "Jacobian descent for multi-objective optimization" (Quinton and Rey, 2024).

Each task gradient, scaled by its preference p_i, is projected onto the dual cone C = {x : G x >= 0} of all the task
gradients, and the update is the sum of the projections:

    d = sum_i pi_C(p_i g_i),   pi_C(p_i g_i) = v_i^T G,   v_i = argmin_{v >= p_i e_i} v^T (G G^T) v

(the paper's Proposition 1), so the weights are sum_i v_i. With the default p_i = 1/T this is the mean of the
projected gradients, as in the paper and torchjd. d conflicts with no task (G d >= 0), and gradients that conflict
with none of the others are left alone (d is then their p-weighted sum).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import Aggregator
from .dual_cone import dual_cone_weights


def parse_pref_vector(name: str, pref_vector: Sequence[float] | None) -> tuple[float, ...] | None:
    """The preference vector as a tuple of floats: non-negative, finite, not all zero; None for the default."""
    if pref_vector is None:
        return None
    if (
        isinstance(pref_vector, (str, bytes))
        or not isinstance(pref_vector, Sequence)
        or not pref_vector
        or not all(
            isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and p >= 0 for p in pref_vector
        )
        or not any(p > 0 for p in pref_vector)
    ):
        raise ConfigError(
            f"{name}: pref_vector must be a non-empty list of non-negative numbers, not all zero, got {pref_vector!r}"
        )
    return tuple(float(p) for p in pref_vector)


def preferences(name: str, pref_vector: tuple[float, ...] | None, gram: Tensor) -> Tensor:
    """p [T] in float64 on the CPU: `pref_vector`, or 1/T for every task."""
    t = gram.shape[0]
    if pref_vector is None:
        return torch.full((t,), 1.0 / t, dtype=torch.float64)
    if len(pref_vector) != t:
        raise ConfigError(f"{name}: pref_vector has {len(pref_vector)} values for {t} tasks")
    return torch.tensor(pref_vector, dtype=torch.float64)


class UPGrad(Aggregator):
    """Unconflicting projection of gradients: weights sum_i v_i, v_i the dual-cone weights of p_i e_i.

    Needs the Gram matrix only; no state. Cost per step: T box-constrained quadratic programs on the [T, T] Gram
    matrix, solved together (`dual_cone_weights`): nothing when no gradient conflicts with another, otherwise
    O(T * k^3) per block-pivoting iteration for free sets of size k <= T (a few iterations), besides the T x P
    Jacobian the step computes anyway. Unlike torchjd, which normalises the Gram matrix by its trace and adds
    1e-4 I before calling a generic QP solver, the projection here is exact (no ridge), singular Gram matrices
    included.
    """

    def __init__(self, pref_vector: Sequence[float] | None = None) -> None:
        super().__init__()
        self.pref_vector = parse_pref_vector("upgrad", pref_vector)

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        p = preferences("upgrad", self.pref_vector, gram)
        v = dual_cone_weights(gram.detach(), torch.diag(p))
        return v.sum(0).to(device=gram.device, dtype=gram.dtype)

    def extra_repr(self) -> str:
        return f"pref_vector={self.pref_vector}"
