"""Wide residual networks (Zagoruyko & Komodakis, 2016) as few-shot backbones: WRN-28-10 of LEO and S2M2."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .precision import channels_last as to_channels_last


class WideBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3(stride)-BN-ReLU-dropout-conv3x3, plus the input, or a strided
    1x1 convolution of the pre-activated input where the width or the side changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.drop = nn.Dropout(drop_rate) if drop_rate else nn.Identity()
        same = in_channels == out_channels and stride == 1
        self.shortcut = None if same else nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv2(self.drop(F.relu(self.bn2(self.conv1(pre)))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    """WRN-`depth`-`widen`: conv3x3 to 16 channels, 3 groups of (depth - 4) / 6 blocks of 16, 32 and 64 times
    `widen` channels with strides 1, 2, 2, a final BN-ReLU and a global average pool: a 64 * widen embedding
    (640 for WRN-28-10; 640x21x21 maps on 84x84 images). `drop_rate` is the dropout between a block's
    convolutions. With `out_features` a linear head follows. `feature_shape` is (C, H, W) of the final maps (a
    FeatureMapBackbone). `channels_last` stores the weights in that layout (the default, as ResNet12's).
    Convolutions are initialised as in the authors' code (Kaiming normal, fan-out), batch norms to identity.
    """

    def __init__(
        self,
        depth: int = 28,
        widen: int = 10,
        in_channels: int = 3,
        out_features: int | None = None,
        image_size: int = 84,
        drop_rate: float = 0.0,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 or widen < 1 or in_channels < 1:
            raise ValueError(f"a WRN needs depth = 6n + 4 >= 10 and widen >= 1, got depth {depth}, widen {widen}")
        if not 0 <= drop_rate < 1:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
        blocks_per_group = (depth - 4) // 6
        widths = [16 * widen, 32 * widen, 64 * widen]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)]
        channels, side = 16, image_size
        for width, stride in zip(widths, (1, 2, 2), strict=True):
            for i in range(blocks_per_group):
                layers.append(WideBlock(channels, width, stride if i == 0 else 1, drop_rate))
                channels = width
            side = (side - 1) // stride + 1
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.feature_shape: tuple[int, int, int] = (channels, side, side)
        self.embedding_dim: int = channels
        self.head = nn.Linear(channels, out_features) if out_features else None
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if channels_last:
            to_channels_last(self)

    def feature_maps(self, x: Tensor) -> Tensor:
        """[N, C, H, W] images -> [N, *feature_shape] maps after the final BN-ReLU (for relation modules)."""
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        """[N, C, H, W] images -> [N, D] embeddings (or [N, out_features] logits with a head)."""
        z = self.feature_maps(x).mean((-2, -1))
        return self.head(z) if self.head is not None else z
