"""Per-task metrics of a multi-task model on a data split.

Classification tasks report accuracy; regression tasks RMSE, MAE and explained variance (1 - SSE / SST, SST
about the task's own mean on the split). Overall figures: mean accuracy; for regression, partitioned data
(School) pools every example as the School literature does (explained variance = 1 - MSE / variance of all
targets of the split; RMSE over all examples), dense data averages the tasks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..data.multitask import MultiTaskData

PRIMARY = {True: ("accuracy", False), False: ("rmse", True)}  # classification? -> (metric, lower is better)


@dataclass
class MultiTaskResult:
    """Per-task metrics ({task: {metric: value}}) and overall figures on one split."""

    split: str
    per_task: dict[str, dict[str, float]]
    overall: dict[str, float]
    primary: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.4f}" for k, v in self.overall.items())


@torch.inference_mode()
def predictions(model: nn.Module, data: MultiTaskData, chunk: int = 2048) -> Tensor:
    """Every example's prediction for every task: [N, T] (class index or regression value)."""
    was_training = model.training
    model.eval()
    rows = []
    try:
        for start in range(0, len(data), chunk):
            out = model(data.x[start:start + chunk])
            cols = [out[t].argmax(-1).float() if c else out[t].reshape(len(out[t]), -1)[:, 0].float()
                    for t, c in zip(data.tasks, data.classes)]
            rows.append(torch.stack(cols, dim=1))
    finally:
        model.train(was_training)
    return torch.cat(rows)


def regression_metrics(pred: Tensor, true: Tensor) -> dict[str, float]:
    """RMSE, MAE and explained variance (1 - SSE / SST about the mean of `true`) of predictions, and their count."""
    err = pred.double() - true.double()
    sst = float(((true.double() - true.double().mean()) ** 2).sum())
    sse = float((err ** 2).sum())
    return {"rmse": math.sqrt(sse / len(err)), "mae": float(err.abs().mean()),
            "explained_variance": 1 - sse / sst if sst > 0 else float("nan"), "n": len(err)}


def evaluate_multitask(model: nn.Module, data: MultiTaskData, split: str = "test") -> MultiTaskResult:
    """Per-task and overall metrics of `model` on `data`."""
    pred = predictions(model, data)
    per_task: dict[str, dict[str, float]] = {}
    primary = {}
    for i, (task, classes) in enumerate(zip(data.tasks, data.classes)):
        rows = torch.arange(len(data)) if data.task is None else torch.nonzero(data.task == i).flatten()
        true = data.y[rows] if data.task is not None else data.y[rows, i]
        p = pred[rows, i]
        if classes:
            per_task[task] = {"accuracy": float((p.long() == true.long()).double().mean()), "n": len(rows)}
        else:
            per_task[task] = regression_metrics(p, true)
        primary[task] = PRIMARY[bool(classes)][0]
    overall: dict[str, float] = {}
    if any(data.classes):
        overall["accuracy"] = _mean(m["accuracy"] for m in per_task.values() if "accuracy" in m)
    if not all(data.classes):
        if data.task is not None:
            index = data.task
            pooled = regression_metrics(pred[torch.arange(len(data)), index], data.y)
            overall.update({k: v for k, v in pooled.items() if k != "n"})
        else:
            for metric in ("rmse", "mae", "explained_variance"):
                overall[metric] = _mean(m[metric] for m in per_task.values() if metric in m)
    return MultiTaskResult(split, per_task, overall, primary)


def _mean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")
