"""The multi-task interfaces: an architecture gives one output per task and says which parameters are shared; a
weighting turns the losses (a loss weighting) or the per-task gradients through their Gram matrix (a gradient
aggregator) into task weights, and the shared update is `weights @ G`; a Jacobian aggregator, which reads the per-task
gradients themselves (elementwise state or operations), returns the update direction with the weights it reports."""

from __future__ import annotations

from collections.abc import Callable
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

    def step_done(self) -> None:
        """Called by the learner once a training step is complete (the optimiser has stepped): a model that changes
        with the step count (learning to branch's temperature and Gumbel noise) advances here, so that every forward
        call within one step, under torch.func transforms or not, sees the same model."""


@dataclass
class Aggregation:
    """The update for the shared parameters and the task weights it is made of: direction = weights @ G."""

    direction: Tensor
    weights: Tensor


class Weighting(nn.Module):
    """A rule for task weights, w [T]; the shared parameters then move along sum_t w_t g_t.

    Three kinds, each with its own signature: a `LossWeighting` reads the losses only (and training makes one
    backward pass of sum_t w_t L_t), an `Aggregator` reads the Gram matrix of the per-task gradients as well, and
    a `JacobianAggregator` reads the per-task gradients themselves. What else a rule needs it declares:
    `needs_num_tasks` (the constructor takes `num_tasks`: stateful rules size their state with it),
    `needs_losses_after_step` (`after_step` is given the batch's losses once the optimiser has stepped: FAMO) and
    `needs_meta_batch` (a `BilevelWeighting`, given a second batch every step: Auto-Lambda).
    """

    needs_num_tasks: ClassVar[bool] = False
    needs_losses_after_step: ClassVar[bool] = False
    needs_meta_batch: ClassVar[bool] = False

    def weights_of(self, gram: Tensor | None, losses: Tensor) -> Tensor:  # pragma: no cover - interface
        """The weights [T] for the global batch's Gram matrix (None when no per-task gradients were computed) and
        detached losses [T]: where each kind's `weights` is called."""
        raise NotImplementedError

    def regularizer(self, losses: Tensor) -> Tensor | None:
        """A term added to the training loss for the weighting's own parameters (UW's log-variances, IMTL-L's loss
        scales), given the global batch's detached losses [T], or None."""
        return None

    def after_step(self, losses: Tensor) -> None:
        """With `needs_losses_after_step`: the same batch's losses [T] (detached, the global batch's) under the
        parameters the optimiser has just produced."""

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


class JacobianAggregator(Weighting):
    """An update direction from the per-task gradients `jac` [T, P] themselves, for rules that keep elementwise
    state (DB-MTL's and MoCo's gradient averages, ExcessMTL's squared-gradient sums) or act per coordinate
    (GradDrop): `combine(jac, losses)`. `acts_per_coordinate` says that each coordinate of the direction depends
    only on that coordinate's column of `jac` (then it may run on representation gradients, `mtl.rep_grad`)."""

    acts_per_coordinate: ClassVar[bool] = False

    def combine(self, jac: Tensor, losses: Tensor) -> Aggregation:  # pragma: no cover - interface
        """This step's direction [P] and the task weights [T] it reports (those of its combination), from the
        global batch's per-task gradients [T, P] and detached losses [T]; stateful rules advance here."""
        raise NotImplementedError

    def weights_of(self, gram: Tensor | None, losses: Tensor) -> Tensor:
        raise TypeError(f"{type(self).__name__} reads the per-task gradients, not their Gram matrix: use combine")


class BilevelWeighting(LossWeighting):
    """A loss weighting whose weights are trained on a second batch (Auto-Lambda): before each step's weighted
    backward pass, `meta_step` is given the model's parameters, the training batch's per-task losses and the meta
    batch's loss as pure functions of them, and updates the weights the step then reads."""

    needs_meta_batch: ClassVar[bool] = True

    def meta_step(
        self,
        params: dict[str, Tensor],
        shared: list[str],
        train_losses: Callable[[dict[str, Tensor]], Tensor],
        meta_loss: Callable[[dict[str, Tensor]], Tensor],
    ) -> None:  # pragma: no cover - interface
        """`params` {name: detached tensor} of the model; `shared` the names of its shared parameters;
        `train_losses(params)` the training batch's per-task losses [T]; `meta_loss(params)` the scalar loss the
        weights are trained to lower."""
        raise NotImplementedError


def combine_jacobian(weighting: Weighting, jac: Tensor, losses: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(weights [T], Gram matrix [T, T], direction [P]) for per-task gradients `jac` [T, P] and `losses` [T]: the
    one place where weights become the update, `w @ G` (or a Jacobian aggregator's own direction), for
    `Weighting.aggregate` and for the training step alike."""
    gram = jac @ jac.T
    if isinstance(weighting, JacobianAggregator):
        aggregation = weighting.combine(jac, losses.detach())
        return aggregation.weights.detach(), gram, aggregation.direction.detach().to(jac.dtype)
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
