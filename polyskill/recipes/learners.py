"""Few-shot learners from recipe sections: the `algo:` section checked against the registry and the learner's
constructor, and the learner built with what its contract asks of the builder. Shared by the kinds whose runs
train a registered meta-learner (few-shot classification and regression)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..meta import ALGORITHMS
from ..meta.base import FewShotAlgorithm
from ..meta.contract import Contract
from ..nn.conv4 import Conv4
from ..nn.mlp import MLP
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


def network(spec: NetworkSpec, input_shape: tuple[int, ...], outputs: int | None, flatten: bool) -> nn.Module:
    """The recipe's network on inputs of `input_shape`; `outputs` adds a linear head of that size (None: an
    embedding network). An MLP over images flattens them first."""
    if spec.backbone == "mlp":
        if outputs is None:
            raise ConfigError(
                "model.backbone mlp needs a learner with an output layer: "
                + ", ".join(n for n, c in ALGORITHMS.items() if c.contract.output_layer)
            )
        with building("model"):
            mlp = MLP([math.prod(input_shape), *spec.widths, outputs])
        return nn.Sequential(nn.Flatten(), mlp) if flatten else mlp
    channels, size = input_shape[0], input_shape[-1]
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
