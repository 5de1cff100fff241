"""FairGrad, "Fair resource allocation in multi-task learning" (Ban and Ji, 2024).

The update d = sum_t w_t g_t gives each task the improvement g_t . d as a "resource" and maximises the alpha-fair
utility sum_t (g_t . d)^(1 - alpha) / (1 - alpha) (log for alpha = 1) over ||d|| <= 1; its optimality condition is

    (G G^T w)_t = w_t^(-1/alpha),  w > 0,

i.e. every task's improvement g_t . d equals w_t^(-1/alpha). alpha = 1 is Nash-MTL's bargaining condition; larger
alpha favours the worst-off task (alpha -> infinity approaches max-min fairness).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import Aggregator


def solve_fairgrad(gram: Tensor, alpha: float, max_iter: int = 100, tol: float = 1e-10, eps: float = 1e-10) -> Tensor:
    """w > 0 with (M w)_t = w_t^(-1/alpha), for a Gram matrix M [T, T] with a positive diagonal.

    The condition is the stationarity of the strictly convex F(w) = 0.5 w^T M w - sum_t h(w_t) with
    h'(w) = w^(-1/alpha) (h = log w for alpha = 1, else w^(1 - 1/alpha) / (1 - 1/alpha)), whose Hessian
    M + diag(w^(-1/alpha - 1) / alpha) is positive definite. Solved by Newton's method in float64 on the CPU, in the
    units where the mean diagonal of M is 1 (w = s^(-alpha / (alpha + 1)) y for M = s M~), from the solution for a
    diagonal M, y_t = M~_tt^(-alpha / (alpha + 1)), times the factor that minimises F along it.

    The Newton step s of F is taken in log w, w_t exp(s_t / w_t) (the same direction to first order): it keeps
    w > 0 and moves a weight by orders of magnitude in one step, as large alpha needs (the weights of well-served
    tasks fall towards zero, 1e-20 and below). The step is halved until F decreases enough (Armijo), or, once the
    predicted decrease is below F's rounding (1e-12 relative), until the sum of squared residuals does; the residual
    of task t is |(M w)_t - w_t^(-1/alpha)| / ((|M| w)_t + w_t^(-1/alpha)), the error of its condition relative to
    the size of its terms (about |w_t^(1/alpha) (M w)_t - 1| / 2 when nothing cancels; a task whose gradient is tiny
    next to the others' can only meet its condition to the rounding of sum_s M_ts w_s). It stops when the largest
    residual is at most `tol`, after `max_iter` iterations, or when no step size down to 1e-12 is accepted; the
    iterate with the smallest largest residual is returned, always positive and finite. M~ gets a ridge `eps` (eps
    times the mean ||g_t||^2 in the original units): when positive weights combine the gradients to zero
    (g_1 = -g_2) the exact condition has no solution and the ridge bounds w; it moves w by about eps times the
    condition number of the Newton system (relative: 1e-7 seen with the default 1e-10).
    """
    t = gram.shape[0]
    m = gram.detach().to(device="cpu", dtype=torch.float64)
    scale = m.diagonal().mean()
    m = 0.5 * (m + m.T) / scale + eps * torch.eye(t, dtype=torch.float64)
    magnitude = m.abs()
    a = 1.0 / alpha
    y = m.diagonal().pow(-alpha / (alpha + 1.0))
    y = y * (y.pow(1.0 - a).sum() / (y @ m @ y)).pow(1.0 / (1.0 + a))

    def objective(x: Tensor) -> float:
        barrier = x.log().sum() if alpha == 1.0 else x.pow(1.0 - a).sum() / (1.0 - a)
        return float(0.5 * (x @ m @ x) - barrier)

    def residuals(x: Tensor) -> Tensor:
        target = x.pow(-a)
        return (m @ x - target).abs() / (magnitude @ x + target)

    value, res = objective(y), residuals(y)
    best, best_res = y, float(res.max())
    for _ in range(max_iter):
        if float(res.max()) <= tol:
            break
        grad = m @ y - y.pow(-a)
        step = -torch.linalg.solve(m + torch.diag(a * y.pow(-a - 1.0)), grad)
        slope = float(grad @ step)
        flat = -slope <= 1e-12 * (1.0 + abs(value))
        size = 1.0
        while size > 1e-12:
            trial = y * torch.exp((size * step / y).clamp(max=50.0))
            trial_value, trial_res = objective(trial), residuals(trial)
            if trial_value <= value + 0.25 * size * slope:
                break
            if flat and float(trial_res.square().sum()) < float(res.square().sum()):
                break
            size *= 0.5
        else:
            break
        y, value, res = trial, trial_value, trial_res
        if float(res.max()) < best_res:
            best, best_res = y, float(res.max())
    return (best * scale.pow(-alpha / (alpha + 1.0))).to(device=gram.device, dtype=gram.dtype)


class FairGrad(Aggregator):
    """Alpha-fair task weights: w > 0 with (G G^T w)_t = w_t^(-1/alpha). Tasks whose gradient is zero get weight 0
    (their condition has no solution) and the others are solved without them.

    Needs the Gram matrix only; no state. Cost per step: a few Newton iterations (typically 5 to 15), each O(T^3) on
    the [T, T] Gram matrix, besides the T x P Jacobian the step computes anyway. The paper's code (and LibMTL)
    solves the same condition with scipy's `least_squares` from w = 1/T; here Newton's method on the convex problem
    whose stationarity it is (see `solve_fairgrad`: `tol` bounds each task's relative residual
    |(G G^T w)_t - w_t^(-1/alpha)| / ((|G G^T| w)_t + w_t^(-1/alpha)), `eps` is the ridge that keeps a solution
    when gradients cancel).
    """

    def __init__(self, alpha: float = 1.0, max_iter: int = 100, tol: float = 1e-10, eps: float = 1e-10) -> None:
        super().__init__()
        for name, value, low in (("alpha", alpha, False), ("tol", tol, False), ("eps", eps, True)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not (value >= 0 if low else value > 0)
            ):
                raise ConfigError(
                    f"fairgrad: {name} must be a {'non-negative' if low else 'positive'} number, got {value!r}"
                )
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ConfigError(f"fairgrad: max_iter must be a positive integer, got {max_iter!r}")
        self.alpha, self.max_iter, self.tol, self.eps = float(alpha), max_iter, float(tol), float(eps)

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        t = gram.shape[0]
        alive = gram.diagonal() > torch.finfo(gram.dtype).tiny
        out = torch.zeros(t, dtype=gram.dtype, device=gram.device)
        if not bool(alive.any()):
            return out
        idx = alive.nonzero().squeeze(1)
        out[idx] = solve_fairgrad(gram[idx][:, idx], self.alpha, self.max_iter, self.tol, self.eps)
        return out

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, max_iter={self.max_iter}, tol={self.tol}, eps={self.eps}"
