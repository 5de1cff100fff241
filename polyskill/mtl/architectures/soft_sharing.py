"""Soft parameter sharing (Duong et al., 2015, "Low Resource Dependency Parsing: Cross-lingual Parameter
Sharing in a Neural Network Parser"; Yang & Hospedales, 2017, "Trace Norm Regularised Deep Multi-Task
Learning"): one tower per task, pulled towards each other by a squared L2 distance between corresponding
parameters added to the loss (the L2 variant; the trace-norm one is not implemented)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .common import EncoderFactory, HeadFactory, check_option, is_real
from .single_task import SingleTask


class SoftSharing(SingleTask):
    """One `encoder()` and `head(task)` per task, nothing shared, and

        penalty() = penalty * sum over pairs of towers t < u of sum over parameters ||theta_t - theta_u||^2,

    the pairwise form (computed as T * sum_t ||theta_t - mean||^2, the same number). Heads are not pulled
    together (their outputs may differ between tasks). Option: `penalty` (>= 0, default 1e-3); with 0,
    `penalty()` is None.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        encoder: EncoderFactory,
        head: HeadFactory,
        input_shape: Sequence[int],
        *,
        penalty: float = 1e-3,
    ) -> None:
        check_option("soft", "penalty", is_real(penalty, 0.0), "a finite number >= 0", penalty)
        super().__init__(tasks, encoder, head, input_shape)
        self.weight = float(penalty)

    def penalty(self) -> Tensor | None:
        """`weight` times the sum over pairs of towers of their squared parameter distance."""
        if self.weight == 0:
            return None
        towers = [dict(self.towers[task].named_parameters()) for task in self.tasks]
        total: Tensor | int = 0
        for name in towers[0]:
            stacked = torch.stack([tower[name] for tower in towers])
            total = total + (stacked - stacked.mean(0)).pow(2).sum()
        return self.weight * len(self.tasks) * torch.as_tensor(total)
