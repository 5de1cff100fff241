"""Few-shot learners from recipe sections: the `algo:` section checked against the registry and the learner's
constructor, and the learner built with what its contract asks of the builder. Shared by the kinds whose runs
train a registered meta-learner (few-shot classification and regression)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..meta import ALGORITHMS
from ..meta.base import FewShotAlgorithm
from ..meta.contract import Contract
from ..nn.conv4 import Conv4
from ..nn.mlp import MLP
from ..nn.resnet12 import SCHEDULE, ResNet12
from ..nn.wrn import WideResNet
from .spec import at_least, building, choice, parse_named

BACKBONE_ARGS = ("backbone",)


def contract(algo: dict[str, Any]) -> Contract:
    """The contract of the learner an `algo:` section names."""
    return ALGORITHMS[algo["name"]].contract


def parse_algo(values: Any, key: str, fits: Callable[[Contract], str | None] = lambda _: None) -> dict[str, Any]:
    """`algo:` names a registered learner (one `fits` does not refuse) and gives its constructor options."""
    return parse_named(values, key, ALGORITHMS, lambda cls: fits(cls.contract), BACKBONE_ARGS)


@dataclass
class NetworkSpec:
    """`conv4`: `hidden` channels per block, the first `pools` blocks max-pooled (null: all); `mlp`: hidden layer
    `widths` (inputs and outputs from the data). `init`: a run directory (or checkpoint file) whose backbone
    weights start this run (meta-transfer: a ProtoNet or MAML started from a pretrained Baseline)."""

    backbone: str = choice("conv4", ("conv4", "mlp"))
    hidden: int = 64
    widths: list[int] = field(default_factory=lambda: [40, 40])
    pools: int | None = None
    init: str | None = None

    def __post_init__(self) -> None:
        at_least(self, hidden=1, widths=1, pools=0)


def _rate(spec: Any) -> None:
    if not 0 <= spec.drop_rate < 1:
        raise ValueError(f"drop_rate must be in [0, 1), got {spec.drop_rate}")


@dataclass
class ResNet12Spec:
    """`resnet12` (MetaOptNet's, on images of at least 16x16): 4 residual blocks of `widths` channels; `drop_rate`
    dropout after each block, or with `drop_block` DropBlock of `block_size` squares on the last two (MetaOptNet:
    drop_rate 0.1, drop_block true), ramped up over `drop_schedule` training passes; `channels_last` weights (faster
    under bf16). `init` as for conv4."""

    backbone: str = choice("resnet12", ("resnet12",))
    widths: list[int] = field(default_factory=lambda: [64, 160, 320, 640])
    drop_rate: float = 0.0
    drop_block: bool = False
    block_size: int = 5
    drop_schedule: int = SCHEDULE
    channels_last: bool = True
    init: str | None = None

    def __post_init__(self) -> None:
        at_least(self, widths=1, block_size=1, drop_schedule=0)
        if len(self.widths) != 4:
            raise ValueError(f"widths must list the 4 blocks' channels, got {len(self.widths)} numbers")
        _rate(self)
        if self.drop_block and self.drop_rate == 0:
            raise ValueError("drop_block drops at drop_rate: set drop_rate > 0 as well (MetaOptNet: 0.1)")


MAX_WRN_DEPTH = 1000


@dataclass
class WRNSpec:
    """`wrn`: a wide residual network WRN-`depth`-`widen` (depth 6n + 4; WRN-28-10 as LEO and S2M2), `drop_rate`
    dropout inside each block; `channels_last` weights. `init` as for conv4."""

    backbone: str = choice("wrn", ("wrn",))
    depth: int = 28
    widen: int = 10
    drop_rate: float = 0.0
    channels_last: bool = True
    init: str | None = None

    def __post_init__(self) -> None:
        at_least(self, depth=10, widen=1)
        if self.depth > MAX_WRN_DEPTH:
            raise ValueError(
                f"depth must be <= {MAX_WRN_DEPTH} (the deepest published residual networks), got {self.depth}"
            )
        if (self.depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4 (10, 16, 22, 28, ...), got {self.depth}")
        _rate(self)


ImageNetworkSpec = NetworkSpec | ResNet12Spec | WRNSpec
#: the `model:` section of each image backbone (conv4 and mlp share one: their recorded runs hold both's keys)
IMAGE_BACKBONES: dict[str, type] = {"conv4": NetworkSpec, "mlp": NetworkSpec, "resnet12": ResNet12Spec, "wrn": WRNSpec}


#: bytes a parameter costs while training: its value, its gradient and Adam's two moments, in fp32
TRAINING_BYTES_PER_PARAMETER = 16


def network(spec: ImageNetworkSpec, input_shape: tuple[int, ...], outputs: int | None, flatten: bool) -> nn.Module:
    """The recipe's network on inputs of `input_shape`; `outputs` adds a linear head of that size (None: an
    embedding network). An MLP over images flattens them first. The network is first built without storage (on
    the meta device) and refused in one line if training it could not fit in this machine's memory, rather than
    allocated layer by layer until the system kills the process."""
    with torch.device("meta"):
        probe = _construct(spec, input_shape, outputs, flatten)
    check_fits_in_memory(sum(p.numel() for p in probe.parameters()))
    return _construct(spec, input_shape, outputs, flatten)


def check_fits_in_memory(parameters: int) -> None:
    """One ConfigError if `parameters` could not be trained in this machine's physical memory."""
    need = parameters * TRAINING_BYTES_PER_PARAMETER
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have:
        raise ConfigError(
            f"model: {parameters / 1e6:,.0f} M parameters need at least {need / 2**30:,.0f} GiB to train (weights, "
            f"gradients, optimizer moments); this machine has {have / 2**30:,.0f} GiB"
        )


def _construct(spec: ImageNetworkSpec, input_shape: tuple[int, ...], outputs: int | None, flatten: bool) -> nn.Module:
    """The network `spec` describes, in the current default device."""
    channels, size = input_shape[0], input_shape[-1]
    if isinstance(spec, ResNet12Spec):
        with building("model"):
            return ResNet12(
                channels,
                spec.widths,
                outputs,
                size,
                spec.drop_rate,
                spec.drop_block,
                spec.block_size,
                spec.drop_schedule,
                spec.channels_last,
            )
    if isinstance(spec, WRNSpec):
        with building("model"):
            return WideResNet(spec.depth, spec.widen, channels, outputs, size, spec.drop_rate, spec.channels_last)
    if spec.backbone == "mlp":
        if outputs is None:
            raise ConfigError(
                "model.backbone mlp needs a learner with an output layer: "
                + ", ".join(n for n, c in ALGORITHMS.items() if c.contract.output_layer)
            )
        with building("model"):
            mlp = MLP([math.prod(input_shape), *spec.widths, outputs])
        return nn.Sequential(nn.Flatten(), mlp) if flatten else mlp
    with building("model"):
        return Conv4(in_channels=channels, hidden=spec.hidden, out_features=outputs, image_size=size, pools=spec.pools)


def learner(algo: dict[str, Any], backbone: nn.Module, context: dict[str, Any]) -> FewShotAlgorithm:
    """The learner `algo` names over `backbone`, given the builder arguments its contract asks for (input_shape,
    classes, num_classes) out of `context` unless the recipe pins them."""
    cls = ALGORITHMS[algo["name"]]
    kwargs = {k: v for k, v in algo.items() if k != "name"}
    for arg in cls.contract.builder_args:
        if kwargs.get(arg) is None:
            kwargs[arg] = context[arg]
    with building(f"algo ({algo['name']})"):
        return cls(backbone, **kwargs)
