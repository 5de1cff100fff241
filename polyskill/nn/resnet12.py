"""ResNet-12: the residual backbone of TADAM, MetaOptNet and FEAT on miniImageNet-sized images (84x84)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .dropblock import DropBlock
from .precision import channels_last as to_channels_last

SLOPE = 0.1  # LeakyReLU's negative slope in MetaOptNet's code
SCHEDULE = 40000  # training passes over which MetaOptNet's code ramps DropBlock's rate up


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 3x3 convolution, padding 1, no bias (a batch norm follows)."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)


class ResidualBlock(nn.Module):
    """3 x [conv3x3, BatchNorm, LeakyReLU(0.1)] (the last activation after the residual sum) with a [conv1x1,
    BatchNorm] shortcut, then 2x2 max-pooling and the block's regulariser (`drop`: dropout, DropBlock or none)."""

    def __init__(self, in_channels: int, out_channels: int, drop: nn.Module) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv3x3(in_channels, out_channels), nn.BatchNorm2d(out_channels)
        self.conv2, self.bn2 = conv3x3(out_channels, out_channels), nn.BatchNorm2d(out_channels)
        self.conv3, self.bn3 = conv3x3(out_channels, out_channels), nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.drop = drop

    def forward(self, x: Tensor) -> Tensor:
        out = F.leaky_relu(self.bn1(self.conv1(x)), SLOPE)
        out = F.leaky_relu(self.bn2(self.conv2(out)), SLOPE)
        out = F.leaky_relu(self.bn3(self.conv3(out)) + self.shortcut(x), SLOPE)
        return self.drop(F.max_pool2d(out, 2))


class ResNet12(nn.Module):
    """4 residual blocks of `widths` channels (64-160-320-640 as MetaOptNet; 64-128-256-512 as TADAM), each
    halving the side, then a global average pool: a `widths[-1]`-d embedding (640x5x5 maps on 84x84 images).

    Regularisation as MetaOptNet: `drop_rate` is dropout after every block; with `drop_block` the last two blocks
    drop `block_size` squares instead (DropBlock), the rate ramped up over `drop_schedule` training passes. With
    `out_features` a linear head follows (for gradient-based learners). `feature_shape` is (C, H, W) of the last
    block's maps (a FeatureMapBackbone). `channels_last` stores the weights in that layout: the default, as fast
    in fp32 and faster under bf16 autocast (benchmarks/resnet12_speed.py). Convolutions are initialised as
    MetaOptNet's (Kaiming normal, fan-out), batch norms to identity.
    """

    def __init__(
        self,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 160, 320, 640),
        out_features: int | None = None,
        image_size: int = 84,
        drop_rate: float = 0.0,
        drop_block: bool = False,
        block_size: int = 5,
        drop_schedule: int = SCHEDULE,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        widths = list(widths)
        if len(widths) != 4 or min(widths) < 1 or in_channels < 1:
            raise ValueError(f"ResNet-12 needs 4 positive widths and in_channels >= 1, got {widths}, {in_channels}")
        if not 0 <= drop_rate < 1:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
        if drop_block and drop_rate == 0:
            raise ValueError("drop_block drops at drop_rate: give a drop_rate > 0 (MetaOptNet: 0.1)")
        side = image_size
        for _ in widths:
            side //= 2
        if side < 1:
            raise ValueError(f"{image_size}x{image_size} inputs are too small for ResNet-12's 4 poolings (>= 16)")
        blocks = []
        for i, (a, b) in enumerate(zip([in_channels, *widths[:-1]], widths, strict=True)):
            blocks.append(ResidualBlock(a, b, self._regulariser(i, drop_rate, drop_block, block_size, drop_schedule)))
        self.blocks = nn.Sequential(*blocks)
        self.feature_shape: tuple[int, int, int] = (widths[-1], side, side)
        self.embedding_dim: int = widths[-1]
        self.head = nn.Linear(self.embedding_dim, out_features) if out_features else None
        for m in self.blocks.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
        if channels_last:
            to_channels_last(self)

    @staticmethod
    def _regulariser(block: int, rate: float, drop_block: bool, size: int, schedule: int) -> nn.Module:
        if rate == 0:
            return nn.Identity()
        if drop_block and block >= 2:
            return DropBlock(rate, size, schedule)
        return nn.Dropout(rate)

    def feature_maps(self, x: Tensor) -> Tensor:
        """[N, C, H, W] images -> [N, *feature_shape] maps of the last block (for relation modules)."""
        return self.blocks(x)

    def forward(self, x: Tensor) -> Tensor:
        """[N, C, H, W] images -> [N, D] embeddings (or [N, out_features] logits with a head)."""
        z = self.feature_maps(x).mean((-2, -1))
        return self.head(z) if self.head is not None else z
