"""ConFIG, "ConFIG: towards conflict-free training of physics informed neural networks" (Liu, Zhao and Thuerey,
2025), eq. 2.

With the unit gradients u_i = g_i / ||g_i|| (the rows of U), the direction g_u = U^+ 1 has the same inner product
with every u_i (u_i . g_u = 1 when the gradients are linearly independent), so it has equal positive cosine with
every task gradient; its length is the sum of the gradients' projections on it:

    d = (sum_i g_i . g_v) g_v,   g_v = g_u / ||g_u||.

From the Gram matrix: U^+ = U^T (U U^T)^+ and U U^T = C is the cosine matrix, so g_u = a^T G with a = N^-1 C^+ 1
(N = diag ||g_i||), and d = (1^T M a / a^T M a) a^T G.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..base import Aggregator


def config_weights(gram: Tensor) -> Tensor:
    """The ConFIG weights [T] from the Gram matrix M [T, T], in float64 on the CPU.

    C^+ drops the eigenvalues of C at most (T sqrt(eps))^2 times the largest, eps that of the Gram matrix's dtype:
    singular values of U below T sqrt(eps) of the largest, as many as the Gram matrix resolves (its entries carry an
    error of about eps ||g||^2), the threshold Aligned-MTL uses too. Zero
    gradients have no unit vector: their row of U is zero, so they get weight 0 (as torchjd does). Weights 0 when
    g_u = 0 (every gradient zero).
    """
    m = gram.detach().to(device="cpu", dtype=torch.float64)
    m = 0.5 * (m + m.T)
    t = m.shape[0]
    norms = m.diagonal().clamp_min(0).sqrt()
    alive = norms > 0
    inverse = torch.where(alive, 1.0 / torch.where(alive, norms, torch.ones_like(norms)), torch.zeros_like(norms))
    cosines = inverse[:, None] * m * inverse[None, :]
    lam, vec = torch.linalg.eigh(cosines)
    rtol = t * torch.finfo(gram.dtype).eps ** 0.5
    keep = lam > rtol**2 * lam[-1].clamp_min(0)
    pinv = (vec * torch.where(keep, 1.0 / torch.where(keep, lam, torch.ones_like(lam)), torch.zeros_like(lam))) @ vec.T
    a = inverse * pinv.sum(1)
    norm_sq = a @ m @ a
    if not bool(norm_sq > 0):
        return torch.zeros(t, dtype=gram.dtype, device=gram.device)
    return ((m.sum(0) @ a) / norm_sq * a).to(device=gram.device, dtype=gram.dtype)


class ConFIG(Aggregator):
    """Conflict-free update: the direction with equal cosine to every task gradient, scaled by the sum of their
    projections on it.

    Needs the Gram matrix only; no state; no options. Cost per step: one symmetric eigendecomposition, O(T^3) on the
    [T, T] Gram matrix, besides the T x P Jacobian the step computes anyway. Differences from the references: the
    official code solves U x = 1 by least squares and torchjd by the SVD pseudo-inverse of U (P columns); here the
    pseudo-inverse of the cosine matrix, the same minimum-norm solution, with the small singular values the Gram
    matrix cannot resolve dropped (see `config_weights`). torchjd also takes a preference vector for the right-hand
    side (default ones, the paper's); the paper's momentum variant (M-ConFIG) is not implemented.
    """

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        return config_weights(gram)
