"""What the aggregator definition tests share: random task gradients with conflicts, zero losses, a checkpoint
round trip of a weighting's state."""

from __future__ import annotations

import io

import torch

F64 = torch.float64


def random_grads(gen: torch.Generator, t: int, p: int, conflict: bool = True) -> torch.Tensor:
    """Task gradients of varied norms; `conflict` mixes in a shared direction of random sign per task."""
    g = torch.randn(t, p, generator=gen, dtype=F64) * (0.2 + 3 * torch.rand(t, 1, generator=gen, dtype=F64))
    if conflict:
        shared = torch.randn(p, generator=gen, dtype=F64)
        g = g + torch.randn(t, 1, generator=gen, dtype=F64) * shared
    return g


def zeros(t: int) -> torch.Tensor:
    return torch.zeros(t, dtype=F64)


def roundtrip(module: torch.nn.Module) -> dict:
    """`module`'s state_dict after torch.save and torch.load(weights_only=True)."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)
