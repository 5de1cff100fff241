"""The multi-task interfaces: an architecture gives one output per task and says which parameters are shared;
an aggregator turns per-task gradients (through their Gram matrix) and losses into task weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn


class MultiTaskModel(nn.Module):
    """One input, one output per task. Subclasses set `tasks` and implement `forward`, `shared_parameters` and
    `task_parameters`; every parameter is either shared or belongs to exactly one task."""

    tasks: tuple[str, ...]

    def forward(self, x: Tensor) -> dict[str, Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters every task's loss depends on: the ones gradient aggregation acts on."""
        raise NotImplementedError

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """Parameters only `task`'s output depends on (its head, its tower, its gate...)."""
        raise NotImplementedError

    def forward_with_representation(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(shared representation, outputs) where every output depends on the input only through the
        representation: what MGDA-UB style aggregation differentiates instead of the shared parameters."""
        raise ValueError(f"{type(self).__name__} has no single shared representation; use mtl.rep_grad: false")

    def shared_trunk(self) -> nn.Module | None:
        """The module that computes `forward_with_representation`'s representation, when it holds every shared
        parameter (hard sharing's encoder), else None. With it, the per-task gradients of a partitioned batch
        run the trunk alone on each task's rows instead of the whole model."""
        return None

    def penalty(self) -> Tensor | None:
        """An extra term added to the training loss (soft sharing's L2 pull between towers), or None."""
        return None


@dataclass
class Aggregation:
    """The update for the shared parameters and the task weights it is made of: direction = weights @ G."""

    direction: Tensor
    weights: Tensor


class Aggregator(nn.Module):
    """Task weights from the per-task gradient Gram matrix `G @ G.T` ([T, T]) and the losses ([T], detached).

    Every method here updates the shared parameters along a combination of the task gradients,
    `sum_t w_t g_t`, so `weights` is all a method implements: the Gram matrix is what the papers' rules read
    (inner products, norms, projections), and it is small ([T, T]) whatever the model size.
    `uses_gradients = False` marks loss-weighting methods (EW, UW, DWA, RLW): they get `gram=None` and the
    trainer makes one ordinary backward pass of `sum_t w_t L_t`; their weights may carry a graph (UW).
    """

    uses_gradients: ClassVar[bool] = True

    def weights(self, gram: Tensor | None, losses: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def regularizer(self) -> Tensor | None:
        """A term added to the weighted loss (UW's log-variances), or None."""
        return None

    def aggregate(self, grads: Tensor, losses: Tensor) -> Aggregation:
        """The update direction [P] for per-task gradients `grads` [T, P] and `losses` [T], with its weights."""
        if grads.dim() != 2 or losses.shape != grads.shape[:1]:
            raise ValueError(f"expected grads [T, P] and losses [T], got {tuple(grads.shape)} and {tuple(losses.shape)}")
        gram = grads @ grads.T if self.uses_gradients else None
        w = self.weights(gram, losses.detach()).detach().to(grads.dtype)
        return Aggregation(w @ grads, w)


def project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of each row of `v` onto the probability simplex (Duchi et al., 2008)."""
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = u.cumsum(-1) - 1
    k = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    rho = (u - css / k > 0).sum(-1, keepdim=True)
    theta = css.gather(-1, rho - 1) / rho.to(v.dtype)
    return (v - theta).clamp_min(0)
