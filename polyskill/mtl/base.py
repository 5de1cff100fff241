"""The multi-task interfaces: an architecture gives one output per task and says which parameters are shared; a
weighting turns the losses (a loss weighting) or the per-task gradients through their Gram matrix (a gradient
aggregator) into task weights, and the shared update is always `weights @ G`."""

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


class Weighting(nn.Module):
    """A rule for task weights, w [T]; the shared parameters then move along sum_t w_t g_t.

    Two kinds, each with its own `weights` signature: a `LossWeighting` reads the losses only (and training makes
    one backward pass of sum_t w_t L_t), an `Aggregator` reads the Gram matrix of the per-task gradients as well.
    `needs_num_tasks` says that the constructor takes `num_tasks` (stateful rules size their state with it).
    """

    needs_num_tasks: ClassVar[bool] = False

    def weights_of(self, gram: Tensor | None, losses: Tensor) -> Tensor:  # pragma: no cover - interface
        """The weights [T] for the global batch's Gram matrix (None when no per-task gradients were computed) and
        detached losses [T]: where each kind's `weights` is called."""
        raise NotImplementedError

    def regularizer(self) -> Tensor | None:
        """A term added to the weighted loss (UW's log-variances), or None."""
        return None

    def aggregate(self, grads: Tensor, losses: Tensor) -> Aggregation:
        """The update direction [P] for per-task gradients `grads` [T, P] and `losses` [T], with its weights."""
        if grads.dim() != 2 or losses.shape != grads.shape[:1]:
            raise ValueError(
                f"expected grads [T, P] and losses [T], got {tuple(grads.shape)} and {tuple(losses.shape)}"
            )
        weights, _, direction = combine_jacobian(self, grads, losses)
        return Aggregation(direction, weights.to(grads.dtype))


class LossWeighting(Weighting):
    """Task weights from the losses alone (EW, UW, DWA, RLW): `weights(losses)`. The weights may carry a graph
    (UW's learnable log-variances), which the weighted loss's backward pass follows."""

    def weights(self, losses: Tensor) -> Tensor:  # pragma: no cover - interface
        """This step's weights [T] from the global batch's losses [T] (detached); stateful rules advance here."""
        raise NotImplementedError

    def weights_of(self, gram: Tensor | None, losses: Tensor) -> Tensor:
        """`weights(losses)`: a Gram matrix, when one was measured (affinity tracking), is not read."""
        return self.weights(losses.detach())


class Aggregator(Weighting):
    """Task weights from the per-task gradient Gram matrix `G @ G.T` ([T, T]) and the losses ([T], detached):
    `weights(gram, losses)`.

    Every method here updates the shared parameters along a combination of the task gradients,
    `sum_t w_t g_t`, so `weights` is all a method implements: the Gram matrix is what the papers' rules read
    (inner products, norms, projections), and it is small ([T, T]) whatever the model size.
    """

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:  # pragma: no cover - interface
        """This step's weights [T] from the global batch's Gram matrix [T, T] and losses [T] (detached)."""
        raise NotImplementedError

    def weights_of(self, gram: Tensor | None, losses: Tensor) -> Tensor:
        """Detached weights; with no Gram matrix (a model without shared parameters: nothing to aggregate) every
        task keeps weight 1 and `weights` is not called."""
        if gram is None:
            return torch.ones_like(losses).detach()
        return self.weights(gram, losses.detach()).detach()


def combine_jacobian(weighting: Weighting, jac: Tensor, losses: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(weights [T], Gram matrix [T, T], direction [P]) for per-task gradients `jac` [T, P] and `losses` [T]: the
    one place where weights become `w @ G`, for `Weighting.aggregate` and for the training step alike."""
    gram = jac @ jac.T
    weights = weighting.weights_of(gram, losses).detach()
    return weights, gram, weights.to(jac.dtype) @ jac


def project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of each row of `v` onto the probability simplex (Duchi et al., 2008)."""
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = u.cumsum(-1) - 1
    k = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    rho = (u - css / k > 0).sum(-1, keepdim=True)
    theta = css.gather(-1, rho - 1) / rho.to(v.dtype)
    return (v - theta).clamp_min(0)
