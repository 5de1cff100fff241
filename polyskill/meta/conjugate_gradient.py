"""Conjugate gradient: solves A x = b for a symmetric positive-definite A given only as a product `matvec(v) = A v`,
for many independent systems at once (iMAML's per-task meta-gradients, each with its own Hessian).

Vectors are tensors [..., n]: leading axes index independent systems, inner products run over the last axis, and
`matvec` maps [..., n] to [..., n] system by system. `flatten` and `unflatten` turn parameter dicts with a leading
task axis into such vectors and back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

MatVec = Callable[[Tensor], Tensor]
"""v [..., n] -> A v [..., n], one symmetric positive-definite A per leading index."""


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Inner products over the last axis, kept as [..., 1] so they broadcast against vectors."""
    return (a * b).sum(-1, keepdim=True)


def conjugate_gradient(matvec: MatVec, b: Tensor, steps: int, x0: Tensor | None = None, tol: float = 0.0) -> Tensor:
    """An approximate solution x [..., n] of A x = b after `steps` conjugate-gradient iterations (each one `matvec`),
    from `x0` (default zero). In exact arithmetic the solution is exact after n steps; each step lowers the error.

    A system that has converged (squared residual at most `tol`) or meets a direction of non-positive curvature
    (A not positive definite along it, as a non-convex loss's Hessian can make it) stops moving while the others
    go on; iMAML's meta-gradient and TRPO's natural-gradient step both solve with it.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"conjugate gradient needs steps >= 1, got {steps!r}")
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b.clone() if x0 is None else b - matvec(x)
    p = r.clone()
    rr = _dot(r, r)
    for _ in range(steps):
        ap = matvec(p)
        curvature = _dot(p, ap)
        moving = (curvature > 0) & (rr > tol)
        alpha = torch.where(moving, rr / torch.where(moving, curvature, torch.ones_like(curvature)), 0.0)
        x = x + alpha * p
        r = r - alpha * ap
        rr_next = _dot(r, r)
        beta = torch.where(moving, rr_next / torch.where(moving, rr, torch.ones_like(rr)), 0.0)
        p = r + beta * p
        rr = rr_next
    return x


def flatten(tensors: Sequence[Tensor], batch_dims: int = 1) -> Tensor:
    """Tensors [*batch, ...] (the same leading `batch_dims` axes) as one vector [*batch, n] per batch index."""
    return torch.cat([t.reshape(*t.shape[:batch_dims], -1) for t in tensors], dim=-1)


def unflatten(vector: Tensor, shapes: Sequence[torch.Size], batch_dims: int = 1) -> list[Tensor]:
    """The inverse of `flatten`: vector [*batch, n] split into tensors [*batch, *shape] of the given `shapes`."""
    batch = vector.shape[:batch_dims]
    sizes = [math.prod(shape) for shape in shapes]
    return [part.reshape(*batch, *shape) for part, shape in zip(vector.split(sizes, -1), shapes, strict=True)]
