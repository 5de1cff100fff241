"""Distances and similarities between batched embeddings, shared by the metric-based learners.

Every function takes batched sets [B, M, D] and [B, N, D] and returns [B, M, N], so one call scores all
the tasks of a TaskBatch; pass `x.unsqueeze(0)` for a single task. Distances and similarities are computed in
float32 (float64 stays float64) even under bf16 autocast: `q^2 - 2 q.k + k^2` cancels, and a bf16 matmul's
8-bit mantissa would leave its distances with errors of the order of the distances between nearby classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def full_precision(x: Tensor) -> Tensor:
    """x in float32 if it is a half-precision type (bf16, fp16), else unchanged."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def prototypes(z: Tensor, labels: Tensor, way: int) -> Tensor:
    """Class means: z [B, S, D], labels [B, S] in 0..way-1 -> [B, way, D] (classes may differ in size)."""
    z = full_precision(z)
    onehot = F.one_hot(labels, way).to(z.dtype)  # [B, S, N]
    with torch.autocast(z.device.type, enabled=False):
        return onehot.transpose(1, 2) @ z / onehot.sum(1).clamp_min(1).unsqueeze(-1)


def squared_distances(query: Tensor, keys: Tensor) -> Tensor:
    """||q - k||^2 for q [B, M, D], k [B, N, D] -> [B, M, N], by one matmul (clamped at 0 against rounding)."""
    query, keys = full_precision(query), full_precision(keys)
    with torch.autocast(query.device.type, enabled=False):
        return (
            query.pow(2).sum(-1, keepdim=True) - 2 * query @ keys.transpose(1, 2) + keys.pow(2).sum(-1).unsqueeze(1)
        ).clamp_min(0)


def euclidean_distances(query: Tensor, keys: Tensor, eps: float = 1e-12) -> Tensor:
    """||q - k|| [B, M, N], with a finite gradient at zero distance (sqrt of the squared distance + eps)."""
    return (squared_distances(query, keys) + eps).sqrt()


def cosine_similarity(query: Tensor, keys: Tensor, eps: float = 1e-8) -> Tensor:
    """cos(q, k) for q [B, M, D], k [B, N, D] -> [B, M, N] (zero vectors score 0)."""
    query, keys = full_precision(query), full_precision(keys)
    with torch.autocast(query.device.type, enabled=False):
        return F.normalize(query, dim=-1, eps=eps) @ F.normalize(keys, dim=-1, eps=eps).transpose(1, 2)
