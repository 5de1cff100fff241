"""LeNet: the small two-convolution network of the MultiMNIST experiments in Sener & Koltun (2018),
"Multi-Task Learning as Multi-Objective Optimization", used there as the shared encoder with one
two-layer head per task."""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError


class LeNetEncoder(nn.Sequential):
    """conv5x5(10) - maxpool 2 - ReLU - conv5x5(20) - maxpool 2 - ReLU - flatten - linear(50) - ReLU.

    The children are three stages, each a small `nn.Sequential` (conv block 1, conv block 2, flatten + fc),
    which is where multi-task architectures that connect towers (cross-stitch, sluice, MTAN) act.
    On 28x28 inputs the flattened features have 20 * 4 * 4 = 320 entries; `out_features` is 50.
    """

    out_features = 50

    def __init__(self, in_channels: int = 1, image_size: int = 28) -> None:
        if in_channels < 1:
            raise ConfigError(f"LeNetEncoder needs in_channels >= 1, got {in_channels}")
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ConfigError(f"LeNetEncoder needs images of at least 16x16 pixels, got {image_size}x{image_size}")
        super().__init__(
            nn.Sequential(nn.Conv2d(in_channels, 10, 5), nn.MaxPool2d(2), nn.ReLU()),
            nn.Sequential(nn.Conv2d(10, 20, 5), nn.MaxPool2d(2), nn.ReLU()),
            nn.Sequential(nn.Flatten(), nn.Linear(20 * side * side, self.out_features), nn.ReLU()),
        )


def lenet_head(classes: int = 10) -> nn.Sequential:
    """The task head of the MultiMNIST LeNet: linear(50, 50) - ReLU - linear(50, classes)."""
    if classes < 1:
        raise ConfigError(f"lenet_head needs classes >= 1, got {classes}")
    return nn.Sequential(nn.Linear(LeNetEncoder.out_features, 50), nn.ReLU(), nn.Linear(50, classes))
