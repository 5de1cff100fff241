"""CAGrad, "Conflict-averse gradient descent for multi-task learning" (Liu, Liu, Jin, Stone, Liu, 2021).

The update d maximises the worst task's local improvement min_t g_t . d within the ball
||d - g0|| <= c ||g0|| around the average gradient g0. Its dual: w on the simplex minimising
F(w) = g_w . g0 + c ||g0|| ||g_w||, g_w = sum_t w_t g_t; then d = g0 + c ||g0|| g_w / ||g_w||.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import Aggregator, project_simplex

RESCALES = (0, 1, 2)


def solve_cagrad(gram: Tensor, c: float, max_iter: int = 500, tol: float = 1e-10) -> Tensor:
    """The weights w on the simplex minimising F(w) = g_w . g0 + c ||g0|| ||g_w||, from the Gram matrix.

    Accelerated projected gradient descent (FISTA with backtracking, a step that may grow again, and a
    momentum restart whenever F does not go down), stopped when the projected gradient step moves less than
    `tol` (max norm), when a plain step from w no longer lowers F (w is then optimal to working precision),
    or after `max_iter` iterations. The iterations run on the CPU (the problem is [T, T]) in float64 whatever
    the Gram matrix's dtype: near its minimum F changes with the square of the distance to it, so comparing
    values of F in float32 places w only to about sqrt(eps) ~ 3e-4 (1.5e-3 seen). For c < 1 and g0 != 0 the
    minimiser has g_w != 0, where F is smooth.
    """
    t = gram.shape[0]
    scale = gram.diagonal().mean()
    if t == 1 or not bool(scale > 0):
        return torch.full((t,), 1.0 / t, dtype=gram.dtype, device=gram.device)
    m = (gram / scale).to(device="cpu", dtype=torch.float64)
    b = m.sum(1) / t
    s = c * (b.sum() / t).clamp_min(0).sqrt()
    eps = torch.finfo(m.dtype).eps

    def value(w: Tensor) -> Tensor:
        return w @ b + s * (w @ m @ w).clamp_min(0).sqrt()

    def grad(w: Tensor) -> Tensor:
        mw = m @ w
        norm = (w @ mw).clamp_min(0).sqrt()
        return b + torch.where(norm > eps, s / norm.clamp_min(eps), torch.zeros_like(norm)) * mw

    w = torch.full((t,), 1.0 / t, dtype=m.dtype)
    y, f_w, momentum = w, value(w), 1.0
    lipschitz = float(torch.linalg.matrix_norm(m, 2)) * (1.0 + float(s))
    for _ in range(max_iter):
        f_y, g_y = value(y), grad(y)
        lipschitz *= 0.5
        while True:
            nxt = project_simplex(y - g_y / lipschitz)
            diff = nxt - y
            f_next = value(nxt)
            bound = f_y + g_y @ diff + 0.5 * lipschitz * (diff @ diff)
            if bool(f_next <= bound + 16 * eps * f_y.abs()) or lipschitz > 1e30:
                break
            lipschitz *= 2.0
        if not bool(f_next < f_w):
            if y is w:
                break
            y, momentum = w, 1.0
            continue
        mapping = float(diff.abs().max())
        next_momentum = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * momentum * momentum))
        y = nxt + ((momentum - 1.0) / next_momentum) * (nxt - w)
        w, f_w, momentum = nxt, f_next, next_momentum
        if mapping < tol:
            break
    return w.to(device=gram.device, dtype=gram.dtype)


class CAGrad(Aggregator):
    """Conflict-averse gradient: weights 1/T + c ||g0|| w / ||g_w||, divided by the rescale factor.

    `c` in [0, 1) is the radius of the ball around the average gradient (0 gives equal weighting, the
    average; the paper's convergence result needs c < 1). `rescale` divides the update as the paper's
    code does: 0 none, 1 by 1 + c^2 (the default there and here), 2 by 1 + c. If g_w = 0 (the average
    gradient is zero, or c = 0) the update is g0 itself.
    """

    def __init__(self, c: float = 0.5, rescale: int = 1, max_iter: int = 500, tol: float = 1e-10) -> None:
        super().__init__()
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0.0 <= c < 1.0:
            raise ConfigError(f"cagrad: c must be a number in [0, 1), got {c!r}")
        if isinstance(rescale, bool) or rescale not in RESCALES:
            raise ConfigError(f"cagrad: rescale must be 0 (none), 1 (by 1 + c^2) or 2 (by 1 + c), got {rescale!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ConfigError(f"cagrad: max_iter must be a positive integer, got {max_iter!r}")
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
            raise ConfigError(f"cagrad: tol must be a positive number, got {tol!r}")
        self.c, self.rescale, self.max_iter, self.tol = float(c), rescale, max_iter, float(tol)

    def unscaled_weights(self, gram: Tensor) -> Tensor:
        """The weights of d = g0 + c ||g0|| g_w / ||g_w||, before rescaling."""
        t = gram.shape[0]
        mean = torch.full((t,), 1.0 / t, dtype=gram.dtype, device=gram.device)
        if self.c == 0.0:
            return mean
        w = solve_cagrad(gram, self.c, self.max_iter, self.tol)
        g0_norm = (gram.sum() / (t * t)).clamp_min(0).sqrt()
        gw_norm = (w @ gram @ w).clamp_min(0).sqrt()
        ok = gw_norm > torch.finfo(gram.dtype).eps * gram.diagonal().max().clamp_min(0).sqrt()
        factor = torch.where(
            ok, self.c * g0_norm / torch.where(ok, gw_norm, torch.ones_like(gw_norm)), torch.zeros_like(gw_norm)
        )
        return mean + factor * w

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        divisor = {0: 1.0, 1: 1.0 + self.c**2, 2: 1.0 + self.c}[self.rescale]
        return self.unscaled_weights(gram) / divisor

    def extra_repr(self) -> str:
        return f"c={self.c}, rescale={self.rescale}"
