"""Single-task baselines trained side by side: one independent encoder and head per task, nothing shared
(the reference every multi-task architecture is measured against, e.g. the delta-m of Maninis et al., 2019).

Each task's output depends only on its own tower and head, so with the per-task losses summed under fixed
weights and a per-parameter optimizer such as Adam or SGD (without global-norm clipping, which couples the
tasks), one step of this model is one step of each of the T separate single-task models: the same as training
them apart, with the same step budget.
"""

from __future__ import annotations

from torch import Tensor

from .common import TowerModel


class SingleTask(TowerModel):
    """`encoder()` and `head(task)` per task; `shared_parameters()` is empty. No options."""

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's head on its own tower's features."""
        return {task: self.heads[task](self.towers[task](x)) for task in self.tasks}
