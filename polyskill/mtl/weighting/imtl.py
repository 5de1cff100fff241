"""IMTL-G, the gradient part of "Towards impartial multi-task learning" (Liu, Li, Kuang, Xue, Chen, Yang,
Liao, Zhang, 2021).

The update d = sum_t alpha_t g_t, sum_t alpha_t = 1, has equal projections onto every unit gradient
u_t = g_t / ||g_t||: with D = [g_1 - g_t] and U = [u_1 - u_t] (t = 2..T), alpha_{2:T} = g_1 U^T (D U^T)^-1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..base import Aggregator


def imtl_weights(gram: Tensor) -> Tensor:
    """The IMTL-G weights alpha [T] from the Gram matrix [T, T] of non-zero gradients.

    With N[i, j] = g_i . u_j = M[i, j] / ||g_j||, the paper's products are g_1 U^T = N[0, 0] - N[0, t] and
    (D U^T)[s, t] = N[0, 0] - N[0, t] - N[s, 0] + N[s, t]. D U^T is singular when the gradients are linearly
    dependent (two equal gradients, more tasks than dimensions); the system is then solved in the least-squares
    sense with the pseudo-inverse, which still gives equal projections whenever some weights do.
    """
    t = gram.shape[0]
    if t == 1:
        return torch.ones(1, dtype=gram.dtype, device=gram.device)
    scale = gram.diagonal().mean()
    m = gram / scale
    n = m @ torch.diag(m.diagonal().clamp_min(0).sqrt().reciprocal())
    first = n[0, 0] - n[0, 1:]
    du = first.unsqueeze(0) - n[1:, :1] + n[1:, 1:]
    rest = first @ torch.linalg.pinv(du)
    return torch.cat([(1 - rest.sum()).unsqueeze(0), rest])


class IMTLG(Aggregator):
    """Impartial gradient weighting: the combination of the task gradients, with weights summing to one, whose
    projection onto every task's unit gradient is the same.

    A task whose gradient is zero has no direction to be impartial to: it gets weight 0 and the weights of the
    other tasks are computed without it (equal weights 1/T if every gradient is zero).
    """

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        t = gram.shape[0]
        diag = gram.diagonal()
        alive = diag > torch.finfo(gram.dtype).tiny
        if not bool(alive.any()):
            return torch.full((t,), 1.0 / t, dtype=gram.dtype, device=gram.device)
        if bool(alive.all()):
            return imtl_weights(gram)
        idx = alive.nonzero().squeeze(1)
        out = torch.zeros(t, dtype=gram.dtype, device=gram.device)
        out[idx] = imtl_weights(gram[idx][:, idx])
        return out
