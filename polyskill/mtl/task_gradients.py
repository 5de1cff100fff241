"""What a per-task gradient strategy hands to the step's `combine`: the losses, the gradients of each task's own
parameters, and what the task weights combine. Three kinds:

- `SharedJacobian`: the per-task gradients of the shared parameters [T, P]; `.grad` of the shared ones is `w @ J`.
- `RepresentationGradients`: the per-task gradients of the shared representation (MGDA-UB); their combination
  `w @ J_rep` goes back through the shared layers once.
- `WeightedLoss`: no per-task gradients to combine (a loss weighting, or no shared parameters); one backward pass of
  `sum_t w_t L_t` (the shared parameters' Jacobian may still be measured, for the Gram matrix only).

Each reduces what it holds over the processes (`reduce`) and writes the weighted combination into `.grad` (`write`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import ConfigError
from .base import JacobianAggregator, Weighting, combine_jacobian
from .reduction import Reduction

Heads = list[tuple[Tensor, Tensor | None]]  # (parameter, this process's gradient of its own task's loss or None)


def accumulate(pairs: Heads) -> None:
    """Add each gradient to its parameter's `.grad` (None: nothing to add)."""
    for p, g in pairs:
        if g is not None:
            p.grad = g.detach().clone() if p.grad is None else p.grad + g.detach()


class TaskGradients(ABC):
    """One strategy's measurements on this process's share of the batch (see the module's docstring)."""

    losses: Tensor
    heads: Heads

    @abstractmethod
    def weigh(self, weighting: Weighting, reduction: Reduction) -> tuple[Tensor, Tensor | None, Tensor]:
        """(weights [T], Gram matrix [T, T] or None, losses [T]) of the global batch, the same on every process:
        what is held is averaged over the processes first, then weighted."""

    @abstractmethod
    def write(self, weights: Tensor) -> list[Tensor]:
        """Leave the weighted combination's gradients in `.grad`; returns the parameters whose `.grad` is already
        the global batch's (the others are averaged over the processes after)."""


@dataclass
class SharedJacobian(TaskGradients):
    """Per-task gradients `jacobian` [T, P] of the `shared` parameters (flattened in their order)."""

    losses: Tensor
    jacobian: Tensor
    shared: list[Tensor]
    heads: Heads = field(default_factory=list)
    direction: Tensor | None = None

    def weigh(self, weighting: Weighting, reduction: Reduction) -> tuple[Tensor, Tensor | None, Tensor]:
        """One all-reduce of T * (P + 1) values, so every process weights the same matrix and stateful weightings
        stay in step."""
        jac, losses = reduction.mean(self.jacobian, self.losses)
        weights, gram, self.direction = combine_jacobian(weighting, jac, losses)
        return weights, gram, losses

    def write(self, weights: Tensor) -> list[Tensor]:
        """The shared parameters' `.grad` is the direction `weigh` combined (those weights @ the global Jacobian)."""
        if self.direction is None:
            raise RuntimeError("SharedJacobian.write before weigh")
        offset = 0
        for p in self.shared:
            n = p.numel()
            accumulate([(p, self.direction[offset : offset + n].view_as(p))])
            offset += n
        return self.shared


@dataclass
class RepresentationGradients(TaskGradients):
    """Per-task gradients of the shared representation `rep`: `rows` [T, R] (or, when `block_diagonal`, task t's
    gradient on its own rows only, [T, R / T]), their Gram matrix on this process, and the `shared` parameters the
    combination goes back to.

    On several processes the global representation is the processes' stacked, and its gradient on one process's
    rows is that process's divided by their number, so the global Gram matrix is the mean of `gram / world`."""

    losses: Tensor
    rep: Tensor
    rows: Tensor
    gram: Tensor
    shared: list[Tensor]
    block_diagonal: bool = False
    heads: Heads = field(default_factory=list)
    combined: Tensor | None = None

    def weigh(self, weighting: Weighting, reduction: Reduction) -> tuple[Tensor, Tensor | None, Tensor]:
        """The Gram matrix's mean over the processes, weighted; a Jacobian aggregator that acts per coordinate
        reads the rows themselves (this process's coordinates of the representation: the losses are the global
        batch's, and each coordinate's direction needs only its own column)."""
        gram, losses = reduction.mean(self.gram / reduction.world, self.losses)
        if not isinstance(weighting, JacobianAggregator):
            return weighting.weights_of(gram, losses), gram, losses
        if not weighting.acts_per_coordinate:
            raise ConfigError(
                f"mtl.rep_grad: {type(weighting).__name__} reads the whole per-task gradients, which the "
                f"representation's are not on their own; use mtl.rep_grad: false"
            )
        rows = torch.block_diag(*self.rows.unbind(0)) if self.block_diagonal else self.rows
        aggregation = weighting.combine(rows, losses)
        self.combined = aggregation.direction.detach().to(self.rows.dtype)
        return aggregation.weights.detach(), gram, losses

    def write(self, weights: Tensor) -> list[Tensor]:
        if self.combined is not None:
            combined = self.combined
        else:
            w = weights.to(self.rows.dtype)
            combined = w[:, None] * self.rows if self.block_diagonal else w @ self.rows
        torch.autograd.backward(self.rep, combined.reshape(self.rep.shape), inputs=self.shared)
        return []


@dataclass
class WeightedLoss(TaskGradients):
    """The losses with their graph; `jacobian` [T, P], when measured, gives the Gram matrix and nothing else."""

    losses: Tensor
    jacobian: Tensor | None = None
    heads: Heads = field(default_factory=list)

    def weigh(self, weighting: Weighting, reduction: Reduction) -> tuple[Tensor, Tensor | None, Tensor]:
        """The losses (and the measured Jacobian) averaged over the processes, so stateful weightings (DWA) see the
        global batch's; the weights keep any graph they have (UW's)."""
        gram = None
        if self.jacobian is not None:
            jac, losses = reduction.mean(self.jacobian, self.losses)
            gram = jac @ jac.T
        else:
            (losses,) = reduction.mean(self.losses)
        return weighting.weights_of(gram, losses), gram, losses

    def write(self, weights: Tensor) -> list[Tensor]:
        (weights * self.losses).sum().backward()
        return []
