"""Cross-stitch networks (Misra, Shrivastava, Gupta & Hebert, 2016, "Cross-stitch Networks for Multi-task
Learning"): one tower per task; after every stage a learned linear unit mixes the towers' activations,
x_t <- sum_u A[t, u] x_u, so that the network learns how much to share at each depth."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .common import EncoderFactory, HeadFactory, TowerModel, check_option, is_real, mixing_matrix

INITS = ("identity", "mixed")


class CrossStitch(TowerModel):
    """One `encoder()` and `head(task)` per task, with a cross-stitch unit after every stage but the last.

    Options: `init` "identity" (default: the towers start independent) or "mixed" (`alpha_self` on the
    diagonal, the rest of each row spread evenly: the paper's (0.9, 0.1) for two tasks); `alpha_self`
    (in [0, 1], default 0.9); `per_channel` (default True: one [T, T] matrix per channel, or per feature
    for flat features, as in the paper; False: one [T, T] matrix per stage); `share_towers` (default False:
    the units are the shared parameters, towers and heads belong to their tasks; True: the towers are shared
    parameters too, so that a gradient aggregator acts on them, and each task owns its head only).
    """

    def __init__(
        self,
        tasks: Sequence[str],
        encoder: EncoderFactory,
        head: HeadFactory,
        input_shape: Sequence[int],
        *,
        init: str = "identity",
        alpha_self: float = 0.9,
        per_channel: bool = True,
        share_towers: bool = False,
    ) -> None:
        check_option("cross_stitch", "init", init in INITS, f"one of {INITS}", init)
        check_option("cross_stitch", "alpha_self", is_real(alpha_self, 0.0, 1.0), "a number in [0, 1]", alpha_self)
        check_option("cross_stitch", "per_channel", isinstance(per_channel, bool), "true or false", per_channel)
        check_option("cross_stitch", "share_towers", isinstance(share_towers, bool), "true or false", share_towers)
        super().__init__(tasks, encoder, head, input_shape)
        self.share_towers = share_towers
        self.per_channel = per_channel
        base = mixing_matrix(len(self.tasks), init, float(alpha_self))
        self.units = nn.ParameterList(
            nn.Parameter(base.expand(shape[0], -1, -1).clone() if per_channel else base.clone())
            for shape in self.stage_shapes[:-1]
        )

    def mix(self, stage: int, features: list[Tensor]) -> list[Tensor]:
        """x_t <- sum_u A[t, u] x_u with stage `stage`'s unit (A[c] on channel c when per channel)."""
        stacked = torch.stack(features)
        unit = self.units[stage]
        if self.per_channel:
            mixed = torch.einsum("ctu,ubc...->tbc...", unit, stacked)
        else:
            mixed = torch.einsum("tu,u...->t...", unit, stacked)
        return list(mixed.unbind(0))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's head on the last stage of its (cross-stitched) tower."""
        finals = [stages[-1] for stages in self.run_towers(x, self.mix)]
        return {task: self.heads[task](z) for task, z in zip(self.tasks, finals, strict=True)}

    def shared_parameters(self) -> list[nn.Parameter]:
        """The cross-stitch units (and the towers, with `share_towers`)."""
        return [*self.units, *self.tower_parameters()]
