"""A learned memory of skill slots that a task reads by attention from its embedding.

M slots each hold a key and a value. A task with embedding z attends over the keys, A = softmax(W_a z K^T /
sqrt(d_k)), and reads r = A V: tasks that resemble each other read similar mixtures of the same slots, so
what the slots hold is shared between related tasks and kept apart for unrelated ones.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SkillMemory(nn.Module):
    """`slots` learned (key, value) pairs; forward(z [B, z_dim]) -> (read-out [B, value_dim], attention [B, M])."""

    def __init__(self, z_dim: int, slots: int = 8, key_dim: int = 32, value_dim: int = 64) -> None:
        super().__init__()
        if min(z_dim, slots, key_dim, value_dim) < 1:
            raise ValueError("the skill memory needs z_dim, slots, key_dim and value_dim >= 1")
        self.query = nn.Linear(z_dim, key_dim, bias=False)  # W_a
        self.keys = nn.Parameter(torch.randn(slots, key_dim))
        self.values = nn.Parameter(torch.randn(slots, value_dim))

    def attention(self, z: Tensor) -> Tensor:
        """A [B, M]: each task's weights over the slots (rows sum to 1)."""
        return torch.softmax(self.query(z) @ self.keys.t() / math.sqrt(self.keys.shape[1]), dim=-1)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        attention = self.attention(z)
        return attention @ self.values, attention
