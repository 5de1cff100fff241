"""Multi-gate Mixture-of-Experts (Ma, Zhao, Yi, Chen, Hong & Chi, 2018, "Modeling Task Relationships in
Multi-task Learning with Multi-gate Mixture-of-Experts"): shared expert networks, and per task a softmax gate
on the input that weighs the experts' outputs into the features its head reads."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

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
    stage_shapes,
)


class MMoE(MultiTaskModel):
    """`experts` encoders shared by every task; task t's head reads sum_e g_t(x)[e] * expert_e(x), where the gate
    g_t(x) = softmax(Linear(flattened x)) over the experts. Option: `experts` (>= 1, default 4).
    The experts are shared; each task's gate and head belong to it.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        encoder: EncoderFactory,
        head: HeadFactory,
        input_shape: Sequence[int],
        *,
        experts: int = 4,
    ) -> None:
        check_option("mmoe", "experts", is_int(experts, 1), "an integer >= 1", experts)
        super().__init__()
        self.tasks = check_tasks(tasks)
        shape = check_input_shape(input_shape)
        self.experts = nn.ModuleList(build_encoder(encoder) for _ in range(experts))
        feature_shape = stage_shapes(cast(nn.Sequential, self.experts[0]), shape)[-1]
        self.gates = nn.ModuleDict({task: nn.Linear(math.prod(shape), experts) for task in self.tasks})
        self.heads = build_heads(self.tasks, head, feature_shape)

    def gate_weights(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's expert weights [batch, experts] (non-negative, summing to 1)."""
        flat = x.flatten(1)
        return {task: torch.softmax(self.gates[task](flat), dim=-1) for task in self.tasks}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's head on its gated mixture of the experts' outputs."""
        return self.forward_with_representation(x)[1]

    def forward_with_representation(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(the experts' outputs stacked [experts, batch, ...], outputs). The gates read the input but own no
        shared parameter, so the shared parameters reach the outputs only through this representation."""
        stacked = torch.stack([expert(x) for expert in self.experts])
        outputs = {}
        for task, weights in self.gate_weights(x).items():
            w = weights.T.reshape(*weights.T.shape, *([1] * (stacked.dim() - 2)))
            outputs[task] = self.heads[task]((w * stacked).sum(0))
        return stacked, outputs

    def shared_parameters(self) -> list[nn.Parameter]:
        """The experts."""
        return list(self.experts.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The task's gate and head."""
        return [*self.gates[task].parameters(), *self.heads[task].parameters()]
