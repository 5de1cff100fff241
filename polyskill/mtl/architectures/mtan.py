"""Multi-Task Attention Network (Liu, Johns & Davison, 2019, "End-to-End Multi-Task Learning with
Attention"): one shared trunk, and per task a soft attention mask at every stage that selects the task's
features from the trunk's, each mask also reading the task's features from the stage before.

What is implemented, exactly, with h_s the trunk's stage-s output (h_0 = x) and stage_s the shared stage s:

    f_{t,1} = sigmoid(g_{t,1}(h_1)) * h_1
    f_{t,s} = sigmoid(g_{t,s}(concat(h_s, stage_s(f_{t,s-1})))) * h_s        for s > 1

concatenated along channels; stage_s (shared weights) brings the previous task feature to h_s's shape, as
the paper's shared block does. g_{t,s} is pointwise: 1x1 convolutions on [C, spatial...] features, linear
layers on flat ones; two layers with a ReLU between them and width C_s (the paper's, without its batch
norms) or one. Task t's head reads f_{t,S}. Unlike the paper, the masks read the stage's output rather
than an intermediate layer inside the block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ..base import MultiTaskModel
from .common import (
    EncoderFactory,
    HeadFactory,
    build_encoder,
    build_heads,
    check_input_shape,
    check_option,
    check_tasks,
    is_int,
    parameters_of,
    stage_shapes,
)

POINTWISE: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def pointwise(in_channels: int, out_channels: int, spatial_dims: int) -> nn.Module:
    """A linear map over channels at every position: Linear for flat features, a 1x1 convolution otherwise."""
    if spatial_dims == 0:
        return nn.Linear(in_channels, out_channels)
    return POINTWISE[spatial_dims](in_channels, out_channels, 1)


def attention_module(in_channels: int, channels: int, spatial_dims: int, layers: int) -> nn.Sequential:
    """g: pointwise(in -> C), or pointwise(in -> C) - ReLU - pointwise(C -> C); the sigmoid is applied after."""
    if layers == 1:
        return nn.Sequential(pointwise(in_channels, channels, spatial_dims))
    return nn.Sequential(
        pointwise(in_channels, channels, spatial_dims), nn.ReLU(), pointwise(channels, channels, spatial_dims)
    )


class MTAN(MultiTaskModel):
    """A shared `encoder()` trunk with a task attention module after every stage, and `head(task)` per task
    on the task's last attended features (see the module docstring for the exact equations).

    Option: `attention_layers` 2 (default, as in the paper) or 1. The trunk is shared; each task's attention
    modules and head belong to it.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        encoder: EncoderFactory,
        head: HeadFactory,
        input_shape: Sequence[int],
        *,
        attention_layers: int = 2,
    ) -> None:
        check_option(
            "mtan",
            "attention_layers",
            is_int(attention_layers, 1) and attention_layers <= 2,
            "1 or 2",
            attention_layers,
        )
        super().__init__()
        self.tasks = check_tasks(tasks)
        self.trunk = build_encoder(encoder)
        self.stage_shapes = stage_shapes(self.trunk, check_input_shape(input_shape))
        for s, shape in enumerate(self.stage_shapes):
            if len(shape) - 1 not in (0, *POINTWISE):
                raise ConfigError(
                    f"mtan: stage {s} outputs features of shape {tuple(shape)}; attention needs "
                    "[features] or [channels, 1 to 3 spatial dims]"
                )
        self.attention = nn.ModuleDict(
            {
                task: nn.ModuleList(
                    attention_module(shape[0] * (1 if s == 0 else 2), shape[0], len(shape) - 1, attention_layers)
                    for s, shape in enumerate(self.stage_shapes)
                )
                for task in self.tasks
            }
        )
        self.heads = build_heads(self.tasks, head, self.stage_shapes[-1])

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's head on its attended features of the trunk's last stage."""
        h = x
        features: list[Tensor] = []
        for s, stage in enumerate(self.trunk):
            h = stage(h)
            inputs = [h] * len(self.tasks) if s == 0 else [torch.cat([h, stage(f)], dim=1) for f in features]
            features = [
                torch.sigmoid(cast(nn.ModuleList, self.attention[task])[s](a)) * h
                for task, a in zip(self.tasks, inputs, strict=True)
            ]
        return {task: self.heads[task](f) for task, f in zip(self.tasks, features, strict=True)}

    def shared_parameters(self) -> list[nn.Parameter]:
        """The trunk."""
        return list(self.trunk.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The task's attention modules and head."""
        return parameters_of(self.attention[task], self.heads[task])
