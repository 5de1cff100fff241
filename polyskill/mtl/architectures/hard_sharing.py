"""Hard parameter sharing (Caruana, 1993; Ruder, 2017, "An Overview of Multi-Task Learning in Deep Neural
Networks"): one encoder shared by every task, one head per task reading its output."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..base import MultiTaskModel
from .common import (
    EncoderFactory,
    HeadFactory,
    build_encoder,
    build_heads,
    check_input_shape,
    check_tasks,
    stage_shapes,
)


class HardSharing(MultiTaskModel):
    """`encoder()` shared by all tasks, then `head(task)` per task. No options."""

    def __init__(
        self, tasks: Sequence[str], encoder: EncoderFactory, head: HeadFactory, input_shape: Sequence[int]
    ) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        self.encoder = build_encoder(encoder)
        self.stage_shapes = stage_shapes(self.encoder, check_input_shape(input_shape))
        self.heads = build_heads(self.tasks, head, self.stage_shapes[-1])

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """One output per task from the shared features."""
        return self.forward_with_representation(x)[1]

    def forward_with_representation(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(encoder(x), each head on it)."""
        z = self.encoder(x)
        return z, {task: self.heads[task](z) for task in self.tasks}

    def shared_trunk(self) -> nn.Module:
        """The shared encoder: the representation's module, holding every shared parameter."""
        return self.encoder

    def shared_parameters(self) -> list[nn.Parameter]:
        """The encoder."""
        return list(self.encoder.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The task's head."""
        return list(self.heads[task].parameters())
