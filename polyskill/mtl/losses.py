"""Per-task losses of a multi-task batch: cross-entropy for classification tasks, MSE for regression tasks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def task_loss(output: Tensor, target: Tensor, classes: int) -> Tensor:
    """Mean cross-entropy when `classes` > 0 (int labels), else mean squared error (a [B, 1] output is squeezed)."""
    if classes:
        return F.cross_entropy(output.float(), target.long())
    if output.dim() == target.dim() + 1 and output.shape[-1] == 1:
        output = output.squeeze(-1)
    return F.mse_loss(output.float(), target.float())


def dense_losses(outputs: dict[str, Tensor], y: Tensor, tasks: tuple[str, ...], classes: tuple[int, ...]) -> Tensor:
    """[T] losses when every example is labelled for every task (`y` [B, T])."""
    return torch.stack([task_loss(outputs[t], y[:, i], classes[i]) for i, t in enumerate(tasks)])


def grouped_losses(outputs: dict[str, Tensor], y: Tensor, tasks: tuple[str, ...], classes: tuple[int, ...]) -> Tensor:
    """[T] losses of a partitioned batch laid out task by task: rows [i*n, (i+1)*n) belong to task i."""
    n = len(y) // len(tasks)
    return torch.stack(
        [task_loss(outputs[t][i * n : (i + 1) * n], y[i * n : (i + 1) * n], classes[i]) for i, t in enumerate(tasks)]
    )
