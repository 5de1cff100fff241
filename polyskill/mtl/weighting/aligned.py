"""Aligned-MTL, "Independent component alignment for multi-task learning" (Senushkin, Patakin, Kuznetsov,
Konushin, 2023).

The task gradients G [T, P] = V Sigma U^T are replaced by aligned ones, G' = sigma_min V U^T = B G with
B = sigma_min V Sigma^-1 V^T: orthogonal, all of norm sigma_min (condition number one). The update is
omega^T G' for pre-weights omega, so the task weights are B omega.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import Aggregator


def alignment_matrix(gram: Tensor, rtol: float | None = None) -> Tensor:
    """B [T, T] with B G the aligned gradients, from the Gram matrix M = G G^T = V diag(sigma^2) V^T.

    Singular values sigma_i <= rtol * sigma_max are dropped (their directions get no component), so a
    rank-deficient G gives gradients orthogonal with norm sigma_min on the span of the others, never NaN.
    The default rtol is T * sqrt(eps) of the dtype: sigma comes from eigenvalues of M, which carry an error
    of about eps * sigma_max^2. An all-zero M gives B = 0.
    """
    t = gram.shape[0]
    if rtol is None:
        rtol = t * math.sqrt(torch.finfo(gram.dtype).eps)
    lam, vec = torch.linalg.eigh(0.5 * (gram + gram.T))
    sigma = lam.clamp_min(0).sqrt()
    keep = sigma > rtol * sigma.max()
    if not bool(keep.any()):
        return torch.zeros_like(gram)
    sigma_min = sigma[keep].min()
    inv = torch.where(keep, sigma_min / torch.where(keep, sigma, torch.ones_like(sigma)), torch.zeros_like(sigma))
    return (vec * inv) @ vec.T


class AlignedMTL(Aggregator):
    """Aligned-MTL: weights B omega with `pre_weights` omega (default one per task, the paper's setting).

    `rtol` is the relative threshold below which singular values count as zero (see `alignment_matrix`).
    """

    def __init__(self, pre_weights: Sequence[float] | None = None, rtol: float | None = None) -> None:
        super().__init__()
        if pre_weights is not None:
            if (
                isinstance(pre_weights, (str, bytes))
                or not isinstance(pre_weights, Sequence)
                or not pre_weights
                or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                    for v in pre_weights
                )
            ):
                raise ConfigError(
                    f"aligned: pre_weights must be a non-empty list of positive numbers, got {pre_weights!r}"
                )
            pre_weights = tuple(float(v) for v in pre_weights)
        if rtol is not None and (isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 < rtol < 1):
            raise ConfigError(f"aligned: rtol must be a number in (0, 1), got {rtol!r}")
        self.pre_weights = pre_weights
        self.rtol = None if rtol is None else float(rtol)

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        t = gram.shape[0]
        if self.pre_weights is None:
            omega = torch.ones(t, dtype=gram.dtype, device=gram.device)
        elif len(self.pre_weights) != t:
            raise ConfigError(f"aligned: pre_weights has {len(self.pre_weights)} values for {t} tasks")
        else:
            omega = torch.tensor(self.pre_weights, dtype=gram.dtype, device=gram.device)
        return alignment_matrix(gram, self.rtol) @ omega

    def extra_repr(self) -> str:
        return f"pre_weights={self.pre_weights}, rtol={self.rtol}"
