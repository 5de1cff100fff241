"""Backbones and numerical helpers shared by every algorithm."""

from .conv4 import Conv4, conv_block
from .mlp import MLP
from .precision import autocast, native_bf16

__all__ = ["Conv4", "MLP", "autocast", "conv_block", "native_bf16"]
