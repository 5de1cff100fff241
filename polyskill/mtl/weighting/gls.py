"""Geometric loss strategy: Chennupati, Sistu, Yogamani and Rawashdeh (2019), "MultiNet++: multi-stream feature
aggregation and geometric loss strategy for multi-task learning".

Rule: minimise the geometric mean of the task losses, GLS = (prod_t L_t)^(1/T). Its gradient is
sum_t (GLS / (T L_t)) dL_t, so one backward pass of sum_t w_t L_t with w_t = GLS / (T L_t) (held constant) moves
the parameters exactly as the geometric mean's would.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..base import LossWeighting

FLOOR = 1e-12  # a loss of exactly zero (a float32 cross-entropy that underflowed) is read as this


class GeometricLossStrategy(LossWeighting):
    """w_t = GLS / (T L_t), the gradient of the geometric mean of the losses with respect to each loss.

    Needs the losses only (no per-task gradients, no state); O(T) per step. The geometric mean is computed as
    exp(mean_t log L_t) in float64, so many tasks or small losses neither underflow nor overflow. Losses must be
    non-negative (a logarithm is taken); zero is floored at 1e-12, where the weight of that task becomes large, as
    the geometric mean's gradient does.
    """

    def weights(self, losses: Tensor) -> Tensor:
        """GLS / (T L_t) [T] in the dtype and on the device of `losses`."""
        if losses.dim() != 1 or losses.numel() == 0:
            raise ValueError(f"gls expects losses [T], got {tuple(losses.shape)}")
        if bool((losses < 0).any()) or not bool(torch.isfinite(losses).all()):
            raise ValueError(f"gls needs finite non-negative losses (their logarithm is taken), got {losses.tolist()}")
        log_l = losses.detach().to(torch.float64).clamp_min(FLOOR).log()
        w = torch.exp(log_l.mean() - log_l) / losses.numel()
        return w.to(device=losses.device, dtype=losses.dtype)
