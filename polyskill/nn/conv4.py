"""Conv4: the four-block convolutional backbone of the few-shot literature (Vinyals et al., 2016)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv3x3 (padding 1) -> BatchNorm -> ReLU -> maxpool 2."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class Conv4(nn.Module):
    """4 x [conv3x3 `hidden`, BatchNorm, ReLU, maxpool 2], flattened: a 64-d embedding on 28x28 inputs.

    With `out_features` a linear head follows (for gradient-based learners). The weights use the
    channels_last layout, which makes the convolutions run channels_last (faster on CPU and GPU) whatever
    the input's layout; forward never inspects the layout, so it also runs under `torch.func.vmap`.
    """

    def __init__(self, in_channels: int = 1, hidden: int = 64, out_features: int | None = None,
                 image_size: int = 28, layers: int = 4) -> None:
        super().__init__()
        widths = [in_channels] + [hidden] * layers
        self.features = nn.Sequential(*(conv_block(a, b) for a, b in zip(widths, widths[1:])))
        side = image_size
        for _ in range(layers):
            side //= 2
        if side < 1:
            raise ValueError(f"{image_size}x{image_size} inputs are too small for {layers} pooling layers")
        self.embedding_dim = hidden * side * side
        self.head = nn.Linear(self.embedding_dim, out_features) if out_features else None
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        """[N, C, H, W] images -> [N, D] embeddings (or [N, out_features] logits with a head)."""
        z = self.features(x).flatten(1)
        return self.head(z) if self.head is not None else z
