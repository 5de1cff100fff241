"""Conv4: the four-block convolutional backbone of the few-shot literature (Vinyals et al., 2016)."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn


def conv_block(in_channels: int, out_channels: int, pool: bool = True) -> nn.Sequential:
    """conv3x3 (padding 1) -> BatchNorm -> ReLU -> maxpool 2 (the pooling only when `pool`)."""
    layers = [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2)) if pool else nn.Sequential(*layers)


class Conv4(nn.Module):
    """4 x [conv3x3 `hidden`, BatchNorm, ReLU, maxpool 2], flattened: a 64-d embedding on 28x28 inputs.

    With `out_features` a linear head follows (for gradient-based learners). `pools` keeps the pooling in the
    first blocks only (Relation Networks: 2 of 4, so 28x28 inputs give 64x7x7 feature maps); `feature_shape`
    is (C, H, W) of the last block's output (a FeatureMapBackbone). The weights use the channels_last layout,
    which makes the convolutions run channels_last (faster on CPU and GPU) whatever the input's layout;
    forward never inspects the layout, so it also runs under `torch.func.vmap`.
    """

    def __init__(
        self,
        in_channels: int = 1,
        hidden: int = 64,
        out_features: int | None = None,
        image_size: int = 28,
        layers: int = 4,
        pools: int | None = None,
    ) -> None:
        super().__init__()
        pools = layers if pools is None else pools
        if not 0 <= pools <= layers:
            raise ValueError(f"pools must be between 0 and layers ({layers}), got {pools}")
        widths = [in_channels] + [hidden] * layers
        self.features = nn.Sequential(
            *(conv_block(a, b, pool=i < pools) for i, (a, b) in enumerate(itertools.pairwise(widths)))
        )
        side = image_size
        for _ in range(pools):
            side //= 2
        if side < 1:
            raise ValueError(f"{image_size}x{image_size} inputs are too small for {pools} pooling layers")
        self.feature_shape: tuple[int, int, int] = (widths[-1], side, side)
        self.embedding_dim: int = widths[-1] * side * side
        self.head = nn.Linear(self.embedding_dim, out_features) if out_features else None
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from torch's stubs

    def feature_maps(self, x: Tensor) -> Tensor:
        """[N, C, H, W] images -> [N, *feature_shape] maps of the last block (for relation modules)."""
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        """[N, C, H, W] images -> [N, D] embeddings (or [N, out_features] logits with a head)."""
        z = self.feature_maps(x).flatten(1)
        return self.head(z) if self.head is not None else z
