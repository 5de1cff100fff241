"""Nash-MTL, "Multi-task learning as a bargaining game" (Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik,
Fetaya, 2022).

The update d = sum_t alpha_t g_t is the Nash bargaining solution: alpha > 0 with (G G^T alpha)_t = 1 / alpha_t
for every task, i.e. every task's directional improvement g_t . d equals 1 / alpha_t.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import Aggregator


def solve_nash(
    gram: Tensor, max_iter: int = 20, tol: float = 1e-9, eps: float = 1e-8, start: Tensor | None = None
) -> Tensor:
    """alpha > 0 with (M alpha)_t = 1 / alpha_t, for a Gram matrix M [T, T] with a positive diagonal.

    Solved in the units of the gradient norms n_t = sqrt(M_tt): beta_t = alpha_t n_t satisfies C beta = 1 / beta
    with the cosine matrix C = M / (n n^T). Newton's method on the convex problem
    min 0.5 beta^T C beta - sum_t log beta_t, whose gradient C beta - 1/beta vanishes exactly at the condition
    and whose Hessian C + diag(1/beta^2) is positive definite; a backtracking line search keeps beta > 0 and
    decreases the objective. It stops when max_t |beta_t (C beta)_t - 1| = max_t |alpha_t (M alpha)_t - 1| <=
    `tol`, or after `max_iter` iterations. C gets a ridge `eps` (eps ||g_t||^2 on each task in the original
    units): when the gradients are linearly dependent with a zero combination of positive weights
    (g_1 = -g_2) the exact problem has no solution, and the ridge bounds alpha. The first iterate is `start`
    (the previous solution) or beta = 1, exact for orthogonal gradients, in both cases rescaled by the best
    common factor. Runs on the CPU in the Gram matrix's dtype.
    """
    t = gram.shape[0]
    norms = gram.diagonal().cpu().sqrt()
    m = gram.cpu() / (norms[:, None] * norms[None, :])
    m = m + eps * torch.eye(t, dtype=m.dtype)
    if start is not None and start.shape == (t,) and bool((start > 0).all()):
        alpha = start.to(device="cpu", dtype=m.dtype) * norms
    else:
        alpha = torch.ones(t, dtype=m.dtype)
    alpha = alpha * (t / (alpha @ m @ alpha)).sqrt()

    def objective(a: Tensor) -> Tensor:
        return 0.5 * (a @ m @ a) - a.log().sum()

    value = objective(alpha)
    for _ in range(max_iter):
        ma = m @ alpha
        if float((alpha * ma - 1).abs().max()) <= tol:
            break
        grad = ma - alpha.reciprocal()
        hessian = m + torch.diag(alpha.pow(-2))
        step = -torch.linalg.solve(hessian, grad)
        shrinking = step < 0
        size = 1.0
        if bool(shrinking.any()):
            size = min(1.0, 0.99 * float((-alpha[shrinking] / step[shrinking]).min()))
        slope = float(grad @ step)
        while size > 1e-12:
            trial = alpha + size * step
            trial_value = objective(trial)
            if bool(trial_value <= value + 0.25 * size * slope):
                break
            size *= 0.5
        else:
            break
        alpha, value = trial, trial_value
    return (alpha / norms).to(gram.device)


class NashMTL(Aggregator):
    """Nash bargaining weights. Tasks whose gradient is zero get weight 0 (their 1/alpha would be unbounded).

    `update_weights_every` = k solves every k-th call and reuses the last weights in between (the paper's
    cheaper variant). `max_norm` > 0 scales the weights down so that ||d|| <= max_norm, as the paper's code clips
    the shared gradient's norm (at 1.0, the default here too); 0 leaves d alone, and then ||d|| = sqrt(T) at
    every step, since d . d = sum_t alpha_t (M alpha)_t = T. With `rep_grad` the norm clipped is the representation
    gradient's. The step counter and the last weights are extra state in `state_dict`; the last weights also
    warm-start the next solve.
    """

    def __init__(
        self,
        max_iter: int = 20,
        tol: float = 1e-9,
        eps: float = 1e-8,
        update_weights_every: int = 1,
        max_norm: float = 1.0,
    ) -> None:
        super().__init__()
        for name, value in (("max_iter", max_iter), ("update_weights_every", update_weights_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"nash: {name} must be a positive integer, got {value!r}")
        for name, number, low in (("tol", tol, False), ("eps", eps, False), ("max_norm", max_norm, True)):
            if (
                isinstance(number, bool)
                or not isinstance(number, (int, float))
                or not (number >= 0 if low else number > 0)
                or number == float("inf")
            ):
                raise ConfigError(
                    f"nash: {name} must be a {'non-negative' if low else 'positive'} number, got {number!r}"
                )
        self.max_iter, self.tol, self.eps = max_iter, float(tol), float(eps)
        self.update_weights_every, self.max_norm = update_weights_every, float(max_norm)
        self.step = 0
        self.last: Tensor | None = None

    def solve(self, gram: Tensor) -> Tensor:
        """The bargaining weights for `gram`, zero for zero gradients (no reuse, no clipping)."""
        t = gram.shape[0]
        alive = gram.diagonal() > torch.finfo(gram.dtype).tiny
        out = torch.zeros(t, dtype=gram.dtype, device=gram.device)
        if not bool(alive.any()):
            return out
        idx = alive.nonzero().squeeze(1)
        start = self.last[idx.cpu()] if self.last is not None and self.last.shape == (t,) else None
        out[idx] = solve_nash(gram[idx][:, idx], self.max_iter, self.tol, self.eps, start)
        return out

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        t = gram.shape[0]
        last = self.last
        if last is not None and last.shape == (t,) and self.step % self.update_weights_every != 0:
            alpha = last.to(device=gram.device, dtype=gram.dtype)
        else:
            alpha = self.solve(gram)
            self.last = alpha.detach().cpu().clone()
        self.step += 1
        if self.max_norm > 0:
            norm = (alpha @ gram @ alpha).clamp_min(0).sqrt()
            alpha = alpha * torch.where(norm > self.max_norm, self.max_norm / norm, torch.ones_like(norm))
        return alpha

    def get_extra_state(self) -> dict[str, Any]:
        return {"step": self.step, "last": self.last}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        last = state["last"]
        self.last = None if last is None else last.detach().cpu().clone()

    def extra_repr(self) -> str:
        return (
            f"max_iter={self.max_iter}, tol={self.tol}, eps={self.eps}, "
            f"update_weights_every={self.update_weights_every}, max_norm={self.max_norm}"
        )
