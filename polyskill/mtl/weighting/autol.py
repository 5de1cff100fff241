"""Auto-Lambda, "Auto-Lambda: disentangling dynamic task relationships" (Liu, James, Davison, Johns, 2022).

The task weights lambda are trained, by Adam, to lower the loss of a second (meta) batch after a virtual step of
the network on the weighted training loss:

    min_lambda  L_meta(theta'),   theta' = theta - alpha * grad_theta sum_t lambda_t L_t(theta).

theta' is linear in lambda with coefficient -alpha g_t (g_t = grad_theta L_t(theta), over every parameter), so
the hypergradient is exact and first order: d L_meta(theta') / d lambda_t = -alpha g_t . grad L_meta(theta'). The
paper's code approximates the same product by finite differences (which it calls the Hessian term); here it is
the product J v of the training losses' Jacobian at theta with v = grad L_meta(theta'), by double backward.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import BilevelWeighting


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"autol: {name} must be a number > 0, got {value!r}")
    return float(value)


def autol_hypergradient(
    params: dict[str, Tensor],
    lam: Tensor,
    alpha: float,
    train_losses: Callable[[dict[str, Tensor]], Tensor],
    meta_loss: Callable[[dict[str, Tensor]], Tensor],
) -> Tensor:
    """d L_meta(theta') / d lambda [T] at the weights `lam`, with theta' = theta - alpha grad sum_t lam_t L_t.

    The weighted gradient is taken with its graph to lambda, so J v = d/d lambda <grad sum_t lambda_t L_t, v> for
    v = grad L_meta(theta') is one more backward pass through it: three backward passes in all."""
    names = list(params)
    leaves = [params[k].detach().requires_grad_(True) for k in names]
    weights = lam.detach().to(leaves[0].dtype).requires_grad_(True)
    losses = train_losses(dict(zip(names, leaves, strict=True)))
    weighted = torch.autograd.grad((weights * losses).sum(), leaves, create_graph=True, allow_unused=True)
    steps = [g if g is not None else torch.zeros_like(p) for g, p in zip(weighted, leaves, strict=True)]
    virtual = [(p - alpha * g).detach().requires_grad_(True) for p, g in zip(leaves, steps, strict=True)]
    direction = torch.autograd.grad(meta_loss(dict(zip(names, virtual, strict=True))), virtual, allow_unused=True)
    inner = sum(
        ((g * d).sum() for g, d in zip(steps, direction, strict=True) if d is not None and g.requires_grad),
        torch.zeros((), dtype=weights.dtype),
    )
    if not inner.requires_grad:
        return torch.zeros_like(lam)
    (products,) = torch.autograd.grad(inner, weights)
    return (-alpha * products).detach().to(lam.dtype)


class AutoLambda(BilevelWeighting):
    """Task weights lambda [T] (initialised at `init`, the paper's 0.1), updated before every training step by one
    Adam step (rate `lr`, the paper's 1e-4; moments and step count in buffers, so a resumed run continues
    exactly) on the exact hypergradient of the meta batch's summed loss after a virtual SGD step of size
    `virtual_lr` (the paper uses the network's learning rate: 1e-3 is polyskill's multi-task recipes' Adam rate).

    Needs: a second batch every step (the multi-task trainer draws the next batch of the training stream; no
    validation data is read, so model selection on the validation split stays clean) and the model as a pure
    function of its parameters. Cost per step: three extra backward passes of the network (one through a weighted
    gradient's graph), whatever the number of tasks. Every task is a primary task (the meta loss is the sum of all
    task losses); the weights are not constrained, as in the paper.
    """

    lam: Tensor
    exp_avg: Tensor
    exp_avg_sq: Tensor
    adam_steps: Tensor

    needs_num_tasks = True

    def __init__(self, num_tasks: int, init: float = 0.1, lr: float = 1e-4, virtual_lr: float = 1e-3) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ConfigError(f"autol: num_tasks must be a positive integer, got {num_tasks!r}")
        self.num_tasks = num_tasks
        self.lr, self.virtual_lr = _positive("lr", lr), _positive("virtual_lr", virtual_lr)
        self.register_buffer("lam", torch.full((num_tasks,), _positive("init", init), dtype=torch.float64))
        self.register_buffer("exp_avg", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("exp_avg_sq", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("adam_steps", torch.zeros((), dtype=torch.int64))

    def weights(self, losses: Tensor) -> Tensor:
        """The current lambda [T] (what `meta_step` last produced)."""
        if losses.shape != (self.num_tasks,):
            raise ValueError(f"autol was built for {self.num_tasks} tasks, got losses {tuple(losses.shape)}")
        return self.lam.to(device=losses.device, dtype=losses.dtype)

    def adam_update(self, gradient: Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        """One Adam step on lambda (Kingma & Ba, 2015, with bias correction), as torch.optim.Adam takes it."""
        g = gradient.to(self.lam)
        self.adam_steps += 1
        step = int(self.adam_steps)
        self.exp_avg.mul_(betas[0]).add_(g, alpha=1 - betas[0])
        self.exp_avg_sq.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
        first, second = 1 - betas[0] ** step, 1 - betas[1] ** step
        denom = (self.exp_avg_sq / second).sqrt().add_(eps)
        self.lam.addcdiv_(self.exp_avg, denom, value=-self.lr / first)

    def meta_step(
        self,
        params: dict[str, Tensor],
        shared: list[str],
        train_losses: Callable[[dict[str, Tensor]], Tensor],
        meta_loss: Callable[[dict[str, Tensor]], Tensor],
    ) -> None:
        """One Adam step of lambda on the hypergradient (every parameter takes the virtual step, as in the paper:
        `shared` is not needed)."""
        self.adam_update(autol_hypergradient(params, self.lam, self.virtual_lr, train_losses, meta_loss))

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, lr={self.lr}, virtual_lr={self.virtual_lr}"
