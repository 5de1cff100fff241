"""Backbones and numerical helpers shared by every algorithm."""

from .backbone import Backbone, FeatureMapBackbone
from .conv4 import Conv4, conv_block
from .dropblock import DropBlock, drop_block
from .lenet import LeNetEncoder, lenet_head
from .mlp import MLP
from .precision import autocast, channels_last, native_bf16
from .resnet12 import ResNet12
from .wrn import WideResNet

__all__ = [
    "MLP",
    "Backbone",
    "Conv4",
    "DropBlock",
    "FeatureMapBackbone",
    "LeNetEncoder",
    "ResNet12",
    "WideResNet",
    "autocast",
    "channels_last",
    "conv_block",
    "drop_block",
    "lenet_head",
    "native_bf16",
]
