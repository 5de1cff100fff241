"""IMTL, the hybrid of IMTL-L and IMTL-G from "Towards impartial multi-task learning" (Liu, Li, Kuang, Xue, Chen,
Yang, Liao, Zhang, 2021).

IMTL-L: each loss is scaled by a learnable s_t (initialised at 0) into e^{s_t} L_t - s_t, and s is trained on the
scaled losses, whose gradient e^{s_t} L_t - 1 vanishes where every scaled loss e^{s_t} L_t is 1. IMTL-G is then
applied to the scaled losses' gradients e^{s_t} g_t (Gram matrix D M D, D = diag(e^s)): weights alpha summing to 1
with equal projections of sum_t alpha_t e^{s_t} g_t on every unit gradient, i.e. weights alpha_t e^{s_t} on the
raw gradients g_t.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from .imtl import IMTLG


class IMTLHybrid(IMTLG):
    """IMTL-G's weights on the loss-scaled gradients, with learnable loss scales `loss_scale` [T].

    Needs the Gram matrix of the per-task gradients and the losses; O(T^3) per step (IMTL-G's [T-1, T-1]
    pseudo-inverse) after the Gram matrix. `regularizer(losses)` = sum_t (e^{s_t} L_t - s_t) with the losses held
    constant gives `loss_scale` the gradient e^{s_t} L_t - 1, as the scaled losses' backward pass does in the paper;
    `loss_scale` must be in the trainer's optimizer. The paper also trains each task's own parameters on its scaled
    loss; here the training step gives them the gradient of the raw loss, as for every aggregator.
    """

    needs_num_tasks = True

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ConfigError(f"imtl_hybrid: num_tasks must be a positive integer, got {num_tasks!r}")
        self.loss_scale = nn.Parameter(torch.zeros(num_tasks))

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        """alpha_t e^{s_t} [T], alpha being IMTL-G's weights for the scaled gradients e^{s_t} g_t."""
        if gram.shape != (self.loss_scale.numel(),) * 2:
            raise ValueError(f"imtl_hybrid was built for {self.loss_scale.numel()} tasks, got gram {tuple(gram.shape)}")
        scale = self.loss_scale.detach().to(device=gram.device, dtype=gram.dtype).exp()
        alpha = super().weights(scale[:, None] * gram * scale[None, :], losses)
        return alpha * scale

    def regularizer(self, losses: Tensor) -> Tensor:
        """sum_t (e^{s_t} L_t - s_t) for the detached losses: the scaled losses as a function of s alone."""
        s = self.loss_scale
        return (s.exp() * losses.detach().to(device=s.device, dtype=s.dtype) - s).sum()
