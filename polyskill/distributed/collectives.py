"""What crosses between ranks: gradients averaged in flat buckets, parameters broadcast, sums and objects."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import Tensor, nn

from .context import DistContext

#: gradients are averaged in flat buckets of at most this many bytes (one all-reduce each, like DDP's 25 MiB)
BUCKET_BYTES = 25 << 20


def _buckets(tensors: list[Tensor]) -> Iterable[list[Tensor]]:
    """Consecutive groups of same-dtype, same-device tensors of at most BUCKET_BYTES (a larger tensor alone)."""
    bucket: list[Tensor] = []
    size = 0
    for tensor in tensors:
        nbytes = tensor.numel() * tensor.element_size()
        if bucket and (
            size + nbytes > BUCKET_BYTES or tensor.dtype != bucket[0].dtype or tensor.device != bucket[0].device
        ):
            yield bucket
            bucket, size = [], 0
        bucket.append(tensor)
        size += nbytes
    if bucket:
        yield bucket


def _average_in_place(tensors: list[Tensor], ctx: DistContext) -> None:
    """Replace every tensor with its mean over the ranks, one all-reduce per bucket."""
    for bucket in _buckets(tensors):
        flat = torch.cat([t.reshape(-1) for t in bucket])
        torch_dist.all_reduce(flat)
        flat.div_(ctx.world)
        offset = 0
        for tensor in bucket:
            tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
            offset += tensor.numel()


def average_gradients(parameters: Iterable[nn.Parameter], ctx: DistContext) -> None:
    """Replace every `.grad` with its mean over the ranks (every rank holds the same gradients after)."""
    if ctx.active:
        _average_in_place([p.grad for p in parameters if p.grad is not None], ctx)


def broadcast_module(module: nn.Module, ctx: DistContext) -> None:
    """Give every rank rank 0's parameters and buffers (identical starting points, whatever each rank's seed)."""
    if not ctx.active:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        torch_dist.broadcast(tensor.data, src=0)


def average_buffers(module: nn.Module, ctx: DistContext) -> None:
    """Average floating-point buffers (batch-norm running statistics) over the ranks."""
    if ctx.active:
        _average_in_place([b for b in module.buffers() if b.is_floating_point()], ctx)


def sum_across(values: Tensor, ctx: DistContext, op: str = "sum") -> Tensor:
    """`values` summed over the ranks (op "min" or "max": their minimum or maximum)."""
    if not ctx.active:
        return values
    out = values.clone()
    torch_dist.all_reduce(
        out, op={"sum": torch_dist.ReduceOp.SUM, "min": torch_dist.ReduceOp.MIN, "max": torch_dist.ReduceOp.MAX}[op]
    )
    return out


def gather_objects(value: Any, ctx: DistContext) -> list[Any]:
    """Every rank's `value`, in rank order (checkpoint pieces that differ by rank: sampler and RNG states)."""
    if not ctx.active:
        return [value]
    out: list[Any] = [None] * ctx.world
    torch_dist.all_gather_object(out, value)
    return out


def share(total: int, ctx: DistContext) -> tuple[int, int]:
    """The items [start, stop) of `total` that this rank takes: contiguous, in rank order, sizes within one."""
    return total * ctx.rank // ctx.world, total * (ctx.rank + 1) // ctx.world


def gather_cat(values: Tensor, ctx: DistContext) -> Tensor:
    """Every rank's `values` (on the CPU), concatenated in rank order: per-episode results of a split evaluation."""
    values = values.detach().cpu()
    return torch.cat(gather_objects(values, ctx)) if ctx.active else values


def barrier(ctx: DistContext) -> None:
    """Wait until every rank is here (rank 0 has finished writing what the others read next)."""
    if ctx.active:
        torch_dist.barrier()
