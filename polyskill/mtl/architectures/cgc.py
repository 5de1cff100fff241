"""Customized Gate Control (Tang, Liu, Zhao & Gong, 2020, "Progressive Layered Extraction (PLE): A Novel
Multi-Task Learning (MTL) Model for Personalized Recommendations", section 4.1): experts shared by every task
plus experts of each task's own, and per task a softmax gate on the input that mixes its own and the shared
experts into the features its head reads:

    g_t(x) = sum_e w_t(x)[e] * S_t(x)[e],   w_t(x) = softmax(W_t x),   S_t(x) = [E_{t,1}(x), ..., E_{s,m_s}(x)]

with S_t listing task t's experts first, then the shared ones (the paper's order), and y_t = head_t(g_t(x)).
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
    build_experts,
    build_heads,
    check_input_shape,
    check_option,
    check_tasks,
    gate,
    is_int,
    mix_experts,
    parameters_of,
    stage_shapes,
)


def check_expert_counts(owner: str, shared_experts: int, task_experts: int) -> None:
    """Both counts integers >= 0 that give every task at least one expert."""
    check_option(owner, "shared_experts", is_int(shared_experts, 0), "an integer >= 0", shared_experts)
    check_option(owner, "task_experts", is_int(task_experts, 0), "an integer >= 0", task_experts)
    if shared_experts + task_experts == 0:
        raise ConfigError(f"{owner}: options shared_experts and task_experts are both 0: every task needs an expert")


class CGC(MultiTaskModel):
    """`shared_experts` encoders shared by every task and `task_experts` encoders per task (each an `encoder()`);
    task t's head reads its gate's mixture of its own and the shared experts (see the module docstring).

    Options: `shared_experts` (>= 0, default 1), `task_experts` (>= 0, default 1), not both 0. The shared experts
    are the shared parameters; each task's experts, gate and head belong to it.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        encoder: EncoderFactory,
        head: HeadFactory,
        input_shape: Sequence[int],
        *,
        shared_experts: int = 1,
        task_experts: int = 1,
    ) -> None:
        check_expert_counts("cgc", shared_experts, task_experts)
        super().__init__()
        self.tasks = check_tasks(tasks)
        shape = check_input_shape(input_shape)
        self.shared_experts = build_experts(encoder, shared_experts)
        self.task_experts = nn.ModuleDict({task: build_experts(encoder, task_experts) for task in self.tasks})
        first = self.shared_experts[0] if shared_experts else cast(nn.ModuleList, self.task_experts[self.tasks[0]])[0]
        feature_shape = stage_shapes(cast(nn.Sequential, first), shape)[-1]
        self.gates = nn.ModuleDict({task: gate(shape, task_experts + shared_experts) for task in self.tasks})
        self.heads = build_heads(self.tasks, head, feature_shape)

    def gate_weights(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's weights [batch, task_experts + shared_experts] (own experts first), non-negative, summing
        to 1."""
        flat = x.flatten(1)
        return {task: torch.softmax(self.gates[task](flat), dim=-1) for task in self.tasks}

    def _outputs(self, x: Tensor, shared: list[Tensor]) -> dict[str, Tensor]:
        """Each task's head on its gated mixture of its own experts' outputs and the shared ones, `shared`."""
        outputs = {}
        for task, weights in self.gate_weights(x).items():
            own = [expert(x) for expert in cast(nn.ModuleList, self.task_experts[task])]
            stacked = torch.stack([*own, *shared], dim=1)
            outputs[task] = self.heads[task](mix_experts(weights, stacked))
        return outputs

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's head on its gated mixture of experts."""
        return self._outputs(x, [expert(x) for expert in self.shared_experts])

    def forward_with_representation(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(the shared experts' outputs stacked batch-first [batch, shared_experts, ...], outputs): every other
        parameter belongs to a task, so the shared ones reach the outputs only through this representation."""
        if not len(self.shared_experts):
            return super().forward_with_representation(x)
        rep = torch.stack([expert(x) for expert in self.shared_experts], dim=1)
        return rep, self._outputs(x, list(rep.unbind(1)))

    def shared_parameters(self) -> list[nn.Parameter]:
        """The shared experts."""
        return list(self.shared_experts.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The task's experts, gate and head."""
        return parameters_of(self.task_experts[task], self.gates[task], self.heads[task])
