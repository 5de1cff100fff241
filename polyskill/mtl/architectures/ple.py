"""Progressive Layered Extraction (Tang, Liu, Zhao & Gong, 2020, "Progressive Layered Extraction (PLE): A Novel
Multi-Task Learning (MTL) Model for Personalized Recommendations", section 4.2): CGC stacked over `levels`
extraction networks. The encoder's stages are split into `levels` consecutive groups (as even as possible,
earlier groups one stage longer when they cannot be equal: LeNet's three stages over two levels are [conv1,
conv2] and [fc]); an expert at level j is group j's stages from its own fresh encoder. With g_{t,0} = g_{s,0} = x,

    g_{t,j} = sum_e softmax(W_{t,j} g_{t,j-1})[e] * [E_{t,j,1}(g_{t,j-1}), ..., E_{s,j,m_s}(g_{s,j-1})][e]
    g_{s,j} = sum_e softmax(W_{s,j} g_{s,j-1})[e] * [E_{1,j,1}(g_{1,j-1}), ..., E_{T,j,m_t}(g_{T,j-1}),
                                                     E_{s,j,1}(g_{s,j-1}), ..., E_{s,j,m_s}(g_{s,j-1})][e]

for levels j = 1..L: task t's experts read its previous gate's output, the shared experts the shared gate's;
task t's gate mixes its own experts (first) and the shared ones; the shared gate, at every level but the last,
mixes every expert of the level (each task's in task order, then the shared ones). Task t's head reads g_{t,L}.
Every gate is a softmax over a linear map of its flattened input, as in the paper.

Which parameters are shared: the shared experts and gates, and also what the shared gate carries into every
task's input of the next level: task experts below the last level (the shared gate mixes them) and task gates
below the last two (they feed those experts). Each task owns the rest of its experts and gates, and its head.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ..base import MultiTaskModel
from .cgc import check_expert_counts
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


def stage_groups(depth: int, levels: int) -> list[tuple[int, int]]:
    """[start, stop) of each of `levels` consecutive groups of `depth` stages, sizes differing by at most one,
    the longer ones first."""
    size, extra = divmod(depth, levels)
    bounds = [0]
    for level in range(levels):
        bounds.append(bounds[-1] + size + (level < extra))
    return list(itertools.pairwise(bounds))


def level_experts(encoders: nn.ModuleList, start: int, stop: int) -> nn.ModuleList:
    """Stages [start, stop) of each encoder, as a plain `nn.Sequential` (slicing keeps a subclass, whose
    constructor may not take stages): one expert per encoder at this level."""
    return nn.ModuleList(nn.Sequential(*list(encoder.children())[start:stop]) for encoder in encoders)


class PLE(MultiTaskModel):
    """`levels` extraction networks over the encoder's stages, each with `shared_experts` shared and
    `task_experts` per-task experts, task gates and (below the last level) a shared gate; `head(task)` on the
    task's last gate (see the module docstring for the equations and the split of the parameters).

    Options: `levels` (1 to the encoder's number of stages, default 2; 1 is CGC), `shared_experts` (>= 0,
    default 1), `task_experts` (>= 0, default 1), not both 0.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        encoder: EncoderFactory,
        head: HeadFactory,
        input_shape: Sequence[int],
        *,
        levels: int = 2,
        shared_experts: int = 1,
        task_experts: int = 1,
    ) -> None:
        check_option("ple", "levels", is_int(levels, 1), "an integer >= 1", levels)
        check_expert_counts("ple", shared_experts, task_experts)
        super().__init__()
        self.tasks = check_tasks(tasks)
        shape = check_input_shape(input_shape)
        shared_encoders = build_experts(encoder, shared_experts)
        task_encoders = {task: build_experts(encoder, task_experts) for task in self.tasks}
        first = shared_encoders[0] if shared_experts else task_encoders[self.tasks[0]][0]  # an nn.Sequential
        shapes = stage_shapes(cast(nn.Sequential, first), shape)
        if levels > len(shapes):
            raise ConfigError(
                f"ple: option levels={levels} must be at most the encoder's number of stages, {len(shapes)}"
            )
        groups = stage_groups(len(shapes), levels)
        in_shapes = [shape, *(shapes[stop - 1] for _, stop in groups[:-1])]
        self.levels = levels
        self.shared_experts = nn.ModuleList(level_experts(shared_encoders, a, b) for a, b in groups)
        self.task_experts = nn.ModuleDict(
            {task: nn.ModuleList(level_experts(task_encoders[task], a, b) for a, b in groups) for task in self.tasks}
        )
        self.task_gates = nn.ModuleDict(
            {task: nn.ModuleList(gate(s, task_experts + shared_experts) for s in in_shapes) for task in self.tasks}
        )
        all_experts = shared_experts + len(self.tasks) * task_experts
        self.shared_gates = nn.ModuleList(gate(s, all_experts) for s in (in_shapes[:-1] if shared_experts else []))
        self.heads = build_heads(self.tasks, head, shapes[-1])

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's head on its last level's gated mixture."""
        task_in = dict.fromkeys(self.tasks, x)
        shared_in = x
        task_experts = {task: cast(nn.ModuleList, self.task_experts[task]) for task in self.tasks}
        task_gates = {task: cast(nn.ModuleList, self.task_gates[task]) for task in self.tasks}
        for level in range(self.levels):
            shared = [expert(shared_in) for expert in cast(nn.ModuleList, self.shared_experts[level])]
            own = {
                task: [expert(task_in[task]) for expert in cast(nn.ModuleList, task_experts[task][level])]
                for task in self.tasks
            }
            if level < len(self.shared_gates):
                weights = torch.softmax(self.shared_gates[level](shared_in.flatten(1)), dim=-1)
                everything = [out for task in self.tasks for out in own[task]]
                shared_in = mix_experts(weights, torch.stack([*everything, *shared], dim=1))
            for task in self.tasks:
                weights = torch.softmax(task_gates[task][level](task_in[task].flatten(1)), dim=-1)
                task_in[task] = mix_experts(weights, torch.stack([*own[task], *shared], dim=1))
        return {task: self.heads[task](task_in[task]) for task in self.tasks}

    def _reaches_every_task(self, level: int, gates: bool) -> bool:
        """Whether the task experts (or, with `gates`, the task gates) at `level` feed a shared gate."""
        last_shared_gate = len(self.shared_gates) - 1
        return level + (1 if gates else 0) <= last_shared_gate

    def _task_modules(self, task: str, shared: bool) -> list[nn.Module]:
        """The task's experts and gates, by level, that are (with `shared`) or are not declared shared."""
        experts = cast(nn.ModuleList, self.task_experts[task])
        gates = cast(nn.ModuleList, self.task_gates[task])
        return [
            *(m for level, m in enumerate(experts) if self._reaches_every_task(level, False) == shared),
            *(m for level, m in enumerate(gates) if self._reaches_every_task(level, True) == shared),
        ]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The shared experts and gates, and the task experts and gates the shared gates carry to every task."""
        carried = [m for task in self.tasks for m in self._task_modules(task, shared=True)]
        return parameters_of(self.shared_experts, self.shared_gates, *carried)

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The task's experts and gates that only its output depends on, and its head."""
        return parameters_of(*self._task_modules(task, shared=False), self.heads[task])
