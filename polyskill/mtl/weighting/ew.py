"""Equal weighting: the plain sum of the task losses, the baseline every multi-task method is compared with.

Rule: w_t = 1 for every task, so the shared parameters move along sum_t g_t (LibMTL's "EW"; Lin & Zhang, 2023).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..base import LossWeighting


class EqualWeighting(LossWeighting):
    """Weight 1 for every task: the trainer backpropagates sum_t L_t."""

    def weights(self, losses: Tensor) -> Tensor:
        """Ones, shaped, typed and placed like `losses` [T]."""
        if losses.dim() != 1:
            raise ValueError(f"expected losses [T], got {tuple(losses.shape)}")
        return torch.ones_like(losses)
