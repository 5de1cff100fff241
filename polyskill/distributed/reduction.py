"""The multi-task step's `Reduction` (polyskill.mtl.reduction) over the ranks of a process group: means by
all-reduce, so a rank's share of the global batch yields the global batch's gradients on every rank."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch
from torch import Tensor

from .collectives import average_gradients, sum_across
from .context import DistContext


class RankReduction:
    """Means over the ranks of `ctx` (on a single process, the tensors themselves, detached)."""

    def __init__(self, ctx: DistContext) -> None:
        self.ctx = ctx

    @property
    def world(self) -> int:
        return self.ctx.world

    def mean(self, *tensors: Tensor) -> list[Tensor]:
        """The detached `tensors` averaged over the ranks in one all-reduce (in their widest dtype), each returned in
        its own dtype and shape."""
        if not self.ctx.active:
            return [t.detach() for t in tensors]
        dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
        flat = torch.cat([t.detach().reshape(-1).to(dtype) for t in tensors])
        flat = sum_across(flat, self.ctx) / self.ctx.world
        out, offset = [], 0
        for t in tensors:
            out.append(flat[offset : offset + t.numel()].view(t.shape).to(t.dtype))
            offset += t.numel()
        return out

    def average_gradients(self, params: Iterable[Tensor]) -> None:
        """Every `.grad` of `params` replaced by its mean over the ranks, in buckets."""
        average_gradients(params, self.ctx)  # type: ignore[arg-type]
