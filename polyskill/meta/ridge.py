"""The ridge regression head of MetaOptNet-RR (Lee et al., 2019; R2-D2, Bertinetto et al., 2019): closed form."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def ridge_head(support: Tensor, labels: Tensor, way: int, lam: float | Tensor) -> Tensor:
    """Weights W [B, D, N] minimising ||X W - Y||^2 + lam ||W||^2 for support X [B, S, D], one-hot Y of labels [B, S].

    No bias, as in the paper. With S <= D (few shots) the dual form X^T (X X^T + lam I)^-1 Y solves an S x S
    system, otherwise the primal (X^T X + lam I)^-1 X^T Y a D x D one; both by Cholesky, differentiable by
    autograd (in `lam` too).
    """
    x, y = support, F.one_hot(labels, way).to(support.dtype)
    samples, dim = x.shape[1], x.shape[2]
    if samples <= dim:
        eye = torch.eye(samples, dtype=x.dtype, device=x.device)
        return x.transpose(1, 2) @ torch.cholesky_solve(y, torch.linalg.cholesky(x @ x.transpose(1, 2) + lam * eye))
    eye = torch.eye(dim, dtype=x.dtype, device=x.device)
    return torch.cholesky_solve(x.transpose(1, 2) @ y, torch.linalg.cholesky(x.transpose(1, 2) @ x + lam * eye))
