"""Backbones and numerical helpers shared by every algorithm."""

from .backbone import Backbone, FeatureMapBackbone
from .conv4 import Conv4, conv_block
from .lenet import LeNetEncoder, lenet_head
from .mlp import MLP
from .precision import autocast, native_bf16

__all__ = [
    "MLP",
    "Backbone",
    "Conv4",
    "FeatureMapBackbone",
    "LeNetEncoder",
    "autocast",
    "conv_block",
    "lenet_head",
    "native_bf16",
]
