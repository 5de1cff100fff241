"""Fitting a fresh classifier head on frozen embeddings, for many tasks at once (Baseline / Baseline++ test time)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .distances import cosine_similarity, prototypes


@dataclass
class LinearHead:
    """Per-task heads: weight [B, N, D], bias [B, N] (linear) or None with a `scale` (scaled cosine)."""

    weight: Tensor
    bias: Tensor | None = None
    scale: float | None = None

    def __call__(self, z: Tensor) -> Tensor:
        """Logits [B, M, N] of embeddings z [B, M, D]."""
        if self.scale is not None:
            return self.scale * cosine_similarity(z, self.weight)
        return z @ self.weight.transpose(1, 2) + self.bias.unsqueeze(1)

    def task(self, index: int) -> "LinearHead":
        """The head of one task, still with a task axis of 1."""
        bias = None if self.bias is None else self.bias[index:index + 1]
        return LinearHead(self.weight[index:index + 1], bias, self.scale)


def initial_head(z: Tensor, y: Tensor, way: int, scale: float | None) -> LinearHead:
    """A deterministic start: zeros for a linear head (so the convex fit has one answer whatever the seed),
    the normalised class prototypes for a cosine head (zero vectors have no direction; this starts from the
    cosine nearest-prototype classifier)."""
    if scale is not None:
        return LinearHead(F.normalize(prototypes(z, y, way), dim=-1), None, scale)
    return LinearHead(z.new_zeros(z.shape[0], way, z.shape[-1]), z.new_zeros(z.shape[0], way))


def head_loss(head: LinearHead, z: Tensor, y: Tensor) -> Tensor:
    """Sum over tasks of each task's mean cross-entropy, so each task's gradient is its own loss's."""
    logits = head(z)
    losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    return losses.view(y.shape).mean(1).sum()


def fit_linear_head(z: Tensor, y: Tensor, way: int, scale: float | None = None, steps: int = 100,
                    lr: float = 0.01, weight_decay: float = 1e-3, momentum: float = 0.9) -> LinearHead:
    """Fit a head per task on embeddings z [B, S, D] with labels y [B, S] by full-batch SGD with momentum.

    `scale` None fits a linear head with bias; a number fits a cosine head (logits scale * cos(z, w_c)).
    The weight decay applies to every head parameter, so the linear fit minimises the mean cross-entropy
    + weight_decay / 2 * (|W|^2 + |b|^2), a strictly convex problem. The tasks are independent: one step
    of one optimiser updates them all. Runs with gradients on even under no_grad / inference_mode, in fp32.
    """
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(z.device.type, enabled=False):
        z, y = z.detach().float().clone(), y.clone()
        head = initial_head(z, y, way, scale)
        params = [p.requires_grad_() for p in (head.weight, head.bias) if p is not None]
        optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            head_loss(head, z, y).backward()
            optimizer.step()
    return LinearHead(head.weight.detach(), None if head.bias is None else head.bias.detach(), scale)
