"""DropBlock (Ghiasi et al., 2018): dropout of contiguous square regions of a feature map, as MetaOptNet's
ResNet-12 uses it, with its drop rate ramped up over training."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def seed_rate(drop_rate: float, block_size: int, height: int, width: int) -> float:
    """The paper's gamma (its eq. 1, for maps of any aspect): the Bernoulli rate of block seeds that drops about
    `drop_rate` of the units, since each seed drops block_size**2 units and seeds lie only where a whole block fits."""
    valid = (height - block_size + 1) * (width - block_size + 1)
    return drop_rate / block_size**2 * (height * width) / valid


def drop_block(x: Tensor, drop_rate: float, block_size: int) -> Tensor:
    """Algorithm 1 of the paper on maps x [N, C, H, W] (a mask per example and channel): seeds ~ Bernoulli(gamma)
    where a block fits, each seed zeroes the block_size x block_size square it starts, and the kept units are
    scaled by count(mask) / count_ones(mask). `block_size` is cut to the map's side when the map is smaller."""
    height, width = x.shape[-2:]
    size = min(block_size, height, width)
    gamma = seed_rate(drop_rate, size, height, width)
    corner = x[..., : height - size + 1, : width - size + 1]
    seeds = (torch.rand_like(corner, dtype=torch.float32) < gamma).float()
    keep = 1 - F.max_pool2d(F.pad(seeds, (size - 1,) * 4), size, stride=1)
    return x * (keep * (keep.numel() / keep.sum().clamp(min=1))).to(x.dtype)  # the count in fp32 under autocast


class DropBlock(nn.Module):
    """DropBlock in training, identity in evaluation. The drop rate rises linearly from 0 to `drop_rate` over the
    first `schedule` training passes (0: at once), as MetaOptNet's code ramps its keep probability from 1 to 0.9
    over 40000 passes. The pass count is kept in a Python int, so forward runs under `torch.func` transforms (a
    MAML inner loop), and checkpointed as the buffer `passes`."""

    passes: Tensor

    def __init__(self, drop_rate: float, block_size: int = 5, schedule: int = 0) -> None:
        super().__init__()
        if not 0 <= drop_rate < 1 or block_size < 1 or schedule < 0:
            raise ValueError(
                f"DropBlock needs 0 <= drop_rate < 1, block_size >= 1 and schedule >= 0, "
                f"got {drop_rate}, {block_size}, {schedule}"
            )
        self.drop_rate, self.block_size, self.schedule = drop_rate, block_size, schedule
        self.count = 0
        self.register_buffer("passes", torch.zeros((), dtype=torch.long))
        self.register_state_dict_pre_hook(_store_count)
        self.register_load_state_dict_post_hook(_restore_count)

    def rate(self) -> float:
        """The drop rate of the next training pass."""
        if self.schedule == 0:
            return self.drop_rate
        return self.drop_rate * min(1.0, (self.count + 1) / self.schedule)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.drop_rate == 0:
            return x
        rate = self.rate()
        self.count += 1
        return drop_block(x, rate, self.block_size)

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate}, block_size={self.block_size}, schedule={self.schedule}"


def _store_count(module: DropBlock, prefix: str, keep_vars: bool) -> None:
    module.passes.fill_(module.count)


def _restore_count(module: nn.Module, incompatible: Any) -> None:
    if isinstance(module, DropBlock):
        module.count = int(module.passes)
