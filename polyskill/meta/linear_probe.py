"""Fitting a fresh classifier head on frozen embeddings, for many tasks at once (Baseline / Baseline++ test time)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .distances import prototypes


def normed_cosine(z: Tensor, direction: Tensor, norm: Tensor) -> Tensor:
    """Chen et al.'s `distLinear` before its scale: z / (|z| + 1e-5) against the weight-normalised rows
    norm_c * v_c / |v_c| (`WeightNorm` with dim 0). z [B, M, D], direction v [B, N, D], norm g [B, N] -> [B, M, N]:
    the cosine of z and v_c times the class's learnable norm g_c."""
    unit = z / (z.norm(dim=-1, keepdim=True) + 1e-5)
    weight = direction * (norm / direction.norm(dim=-1)).unsqueeze(-1)
    return unit @ weight.transpose(1, 2)


@dataclass
class LinearHead:
    """Per-task heads: weight [B, N, D] and bias [B, N] (linear), or, with a `scale`, a cosine head whose
    `weight` holds the class directions v and `norm` [B, N] their learnable norms g (Baseline++)."""

    weight: Tensor
    bias: Tensor | None = None
    scale: float | None = None
    norm: Tensor | None = None

    def __call__(self, z: Tensor) -> Tensor:
        """Logits [B, M, N] of embeddings z [B, M, D]."""
        if self.scale is not None:
            norm = self.norm if self.norm is not None else self.weight.new_ones(self.weight.shape[:2])
            return self.scale * normed_cosine(z, self.weight, norm)
        logits = z @ self.weight.transpose(1, 2)
        return logits if self.bias is None else logits + self.bias.unsqueeze(1)

    def task(self, index: int) -> LinearHead:
        """The head of one task, still with a task axis of 1."""
        bias = None if self.bias is None else self.bias[index : index + 1]
        norm = None if self.norm is None else self.norm[index : index + 1]
        return LinearHead(self.weight[index : index + 1], bias, self.scale, norm)

    def parameters(self) -> list[Tensor]:
        """The tensors a fit adjusts (weight, then bias or norm)."""
        return [t for t in (self.weight, self.bias, self.norm) if t is not None]

    def detach(self) -> LinearHead:
        """The same head with every tensor detached from the fit's graph."""
        return LinearHead(
            self.weight.detach(),
            None if self.bias is None else self.bias.detach(),
            self.scale,
            None if self.norm is None else self.norm.detach(),
        )


def initial_head(z: Tensor, y: Tensor, way: int, scale: float | None) -> LinearHead:
    """A deterministic start: zeros for a linear head (so the convex fit has one answer whatever the seed),
    the normalised class prototypes with norms 1 for a cosine head (zero vectors have no direction; this
    starts from the cosine nearest-prototype classifier; Chen et al. start from nn.Linear's random rows)."""
    if scale is not None:
        return LinearHead(F.normalize(prototypes(z, y, way), dim=-1), None, scale, z.new_ones(z.shape[0], way))
    return LinearHead(z.new_zeros(z.shape[0], way, z.shape[-1]), z.new_zeros(z.shape[0], way))


def head_loss(head: LinearHead, z: Tensor, y: Tensor) -> Tensor:
    """Sum over tasks of each task's mean cross-entropy, so each task's gradient is its own loss's."""
    logits = head(z)
    losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    return losses.view(y.shape).mean(1).sum()


def fit_linear_head(
    z: Tensor,
    y: Tensor,
    way: int,
    scale: float | None = None,
    steps: int = 100,
    lr: float = 0.01,
    weight_decay: float = 1e-3,
    momentum: float = 0.9,
) -> LinearHead:
    """Fit a head per task on embeddings z [B, S, D] with labels y [B, S] by full-batch SGD with momentum.

    `scale` None fits a linear head with bias; a number fits Baseline++'s cosine head (logits scale * g_c *
    cos(z, v_c), direction v_c and norm g_c both learned, as Chen et al.'s weight-normalised `distLinear`).
    The weight decay applies to every head parameter, so the linear fit minimises the mean cross-entropy
    + weight_decay / 2 * (|W|^2 + |b|^2), a strictly convex problem. The tasks are independent: one step
    of one optimiser updates them all. Runs with gradients on even under no_grad / inference_mode, in fp32.
    """
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(z.device.type, enabled=False):
        z, y = z.detach().float().clone(), y.clone()
        head = initial_head(z, y, way, scale)
        params = [p.requires_grad_() for p in head.parameters()]
        optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            head_loss(head, z, y).backward()
            optimizer.step()
    return head.detach()
