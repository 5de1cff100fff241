"""Trust region policy optimization (Schulman et al. 2015): conjugate gradient on Fisher-vector products from
double backprop through a KL, then a backtracking line search under the KL bound. MAML-TRPO's outer step."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from polyskill.errors import ConfigError
from polyskill.meta.conjugate_gradient import conjugate_gradient


def _flat(grads: Sequence[Tensor | None], params: Sequence[Tensor]) -> Tensor:
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params, strict=True)]
    )


def fisher_vector_product(
    kl: Callable[[], Tensor], params: Sequence[Tensor], damping: float
) -> Callable[[Tensor], Tensor]:
    """v (flat [P]) -> (the Hessian of kl() w.r.t. params at the current point) v + damping v, by double backprop
    through one evaluation of kl(); at the start of a TRPO step that Hessian is the Fisher information."""
    params = list(params)
    grads = torch.autograd.grad(kl(), params, create_graph=True, allow_unused=True)
    flat_grad = _flat(grads, params)

    def product(v: Tensor) -> Tensor:
        v = v.detach()
        if not flat_grad.requires_grad:
            return damping * v
        hv = torch.autograd.grad(flat_grad @ v, params, retain_graph=True, allow_unused=True)
        return _flat(hv, params).detach() + damping * v

    return product


@dataclass(frozen=True)
class TRPOConfig:
    """The trust region (max_kl), the Fisher damping and CG iterations, and the backtracking line search."""

    max_kl: float = 1e-2
    damping: float = 1e-5
    cg_iters: int = 10
    backtrack_ratio: float = 0.8
    max_backtracks: int = 15

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_kl) and self.max_kl > 0):
            raise ConfigError(f"trpo: max_kl must be positive, got {self.max_kl}")
        if not (math.isfinite(self.damping) and self.damping >= 0):
            raise ConfigError(f"trpo: damping must be >= 0, got {self.damping}")
        if self.cg_iters < 1:
            raise ConfigError(f"trpo: cg_iters must be >= 1, got {self.cg_iters}")
        if not 0 < self.backtrack_ratio < 1:
            raise ConfigError(f"trpo: backtrack_ratio must be in (0, 1), got {self.backtrack_ratio}")
        if self.max_backtracks < 1:
            raise ConfigError(f"trpo: max_backtracks must be >= 1, got {self.max_backtracks}")


def trpo_step(
    params: Sequence[nn.Parameter], loss: Callable[[], Tensor], kl: Callable[[], Tensor], config: TRPOConfig
) -> dict[str, float]:
    """One TRPO update of `params` in place: the natural-gradient step scaled to the KL bound, shrunk until the loss
    falls and kl() <= max_kl; if no step qualifies the params are restored exactly. `loss` and `kl` are re-evaluated
    at the current params (kl() is the KL from the policy at the start of the step, 0 there); the line search only
    needs their values and evaluates them under `torch.no_grad()`, so a closure that differentiates inside (MAML's
    inner step) enables gradients for that part itself and can skip building graphs for higher derivatives."""
    params = list(params)
    start = [p.detach().clone() for p in params]
    loss_before = loss()
    before = float(loss_before.detach())
    grad = _flat(torch.autograd.grad(loss_before, params, allow_unused=True), params).detach()
    fvp = fisher_vector_product(kl, params, config.damping)
    direction = conjugate_gradient(fvp, -grad, config.cg_iters, tol=1e-10)
    shs = float(direction @ fvp(direction))
    result = {"loss_before": before, "loss_after": before, "kl": 0.0, "step_fraction": 0.0}
    if not (math.isfinite(shs) and shs > 0 and math.isfinite(before)):
        return result
    full_step = direction * math.sqrt(2 * config.max_kl / shs)
    steps = list(full_step.split([p.numel() for p in params]))
    for k in range(config.max_backtracks):
        fraction = config.backtrack_ratio**k
        with torch.no_grad():
            for p, p0, s in zip(params, start, steps, strict=True):
                p.copy_(p0 + fraction * s.view_as(p))
            new_loss, new_kl = float(loss()), float(kl())
        if new_loss < before and new_kl <= config.max_kl:
            return {"loss_before": before, "loss_after": new_loss, "kl": new_kl, "step_fraction": fraction}
    with torch.no_grad():
        for p, p0 in zip(params, start, strict=True):
            p.copy_(p0)
    return result
