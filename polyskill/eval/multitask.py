"""Multi-task evaluation: per-task metrics of a model on a data split, and delta-m against single-task baselines.

Classification tasks report accuracy; regression tasks RMSE, MAE and explained variance (1 - SSE / SST, SST
about the task's own mean on the split). Overall figures: mean accuracy; for regression, partitioned data
(School) pools every example as the School literature does (explained variance = 1 - MSE / variance of all
targets of the split; RMSE over all examples), dense data averages the tasks. The headline value (what
validation selects on) is the mean accuracy when any task classifies, else the explained variance.

delta-m (Maninis et al., 2019), in percent, positive = better than single-task:
    delta_m = 100 / T * sum_t (-1)^{l_t} (M_t - B_t) / B_t
with M_t the multi-task model's primary metric on task t, B_t the single-task baseline's, l_t = 1 when lower
is better (RMSE) and 0 when higher is better (accuracy).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..data.multitask import MultiTaskData
from ..distributed import SINGLE, DistContext
from .protocol import EvalProtocol
from .result import Result

PRIMARY = {True: "accuracy", False: "rmse"}  # classification? -> the per-task metric delta-m compares
LOWER_IS_BETTER = frozenset({"rmse", "mae"})


@dataclass(frozen=True)
class MultiTaskResult(Result):
    """Per-task metrics ({task: {metric: value}}) and overall figures on one split; `delta_m` (percent) against
    the single-task `baseline` run when one was given."""

    protocol: ClassVar[str] = "multitask"
    metric: ClassVar[str] = "score"
    measured: ClassVar[tuple[str, ...]] = ("per_task", "overall", "primary", "delta_m")

    split: str
    per_task: dict[str, dict[str, float]]
    overall: dict[str, float]
    primary: dict[str, str] = field(default_factory=dict)
    delta_m: float | None = None
    baseline: str | None = None
    weights: str | None = None

    @property
    def value(self) -> float:
        """Mean accuracy when any task classifies, else explained variance."""
        return self.overall["accuracy"] if "accuracy" in self.overall else self.overall["explained_variance"]

    @property
    def interval(self) -> float | None:
        return None

    @property
    def label(self) -> str:
        return f"{len(self.per_task)} tasks"

    def formatted(self) -> str:
        cell = ", ".join(f"{k} {v:.4f}" for k, v in self.overall.items() if isinstance(v, (int, float)))
        return cell + (f", delta-m {self.delta_m:+.2f}%" if self.delta_m is not None else "")

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
            out = model(data.x[start : start + chunk])
            cols = [
                out[t].argmax(-1).float() if c else out[t].reshape(len(out[t]), -1)[:, 0].float()
                for t, c in zip(data.tasks, data.classes, strict=True)
            ]
            rows.append(torch.stack(cols, dim=1))
    finally:
        model.train(was_training)
    return torch.cat(rows)


def regression_metrics(pred: Tensor, true: Tensor) -> dict[str, float]:
    """RMSE, MAE and explained variance (1 - SSE / SST about the mean of `true`) of predictions, and their count."""
    err = pred.double() - true.double()
    sst = float(((true.double() - true.double().mean()) ** 2).sum())
    sse = float((err**2).sum())
    return {
        "rmse": math.sqrt(sse / len(err)),
        "mae": float(err.abs().mean()),
        "explained_variance": 1 - sse / sst if sst > 0 else float("nan"),
        "n": len(err),
    }


def evaluate_multitask(model: nn.Module, data: MultiTaskData, split: str = "test") -> MultiTaskResult:
    """Per-task and overall metrics of `model` on `data`."""
    pred = predictions(model, data)
    per_task: dict[str, dict[str, float]] = {}
    primary = {}
    for i, (task, classes) in enumerate(zip(data.tasks, data.classes, strict=True)):
        rows = torch.arange(len(data)) if data.task is None else torch.nonzero(data.task == i).flatten()
        true = data.y[rows] if data.task is not None else data.y[rows, i]
        p = pred[rows, i]
        if classes:
            per_task[task] = {"accuracy": float((p.long() == true.long()).double().mean()), "n": len(rows)}
        else:
            per_task[task] = regression_metrics(p, true)
        primary[task] = PRIMARY[bool(classes)]
    overall: dict[str, float] = {}
    if any(data.classes):
        overall["accuracy"] = _mean(m["accuracy"] for m in per_task.values() if "accuracy" in m)
    if not all(data.classes):
        if data.task is not None:
            pooled = regression_metrics(pred[torch.arange(len(data)), data.task], data.y)
            overall.update({k: v for k, v in pooled.items() if k != "n"})
        else:
            for metric in ("rmse", "mae", "explained_variance"):
                overall[metric] = _mean(m[metric] for m in per_task.values() if metric in m)
    return MultiTaskResult(split, per_task, overall, primary)


def _mean(values: Iterable[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else float("nan")


def delta_m(result: dict[str, Any] | MultiTaskResult, baseline: dict[str, Any] | MultiTaskResult) -> float:
    """delta-m in percent of `result` against `baseline` (results, or their dicts, of the same tasks)."""
    result = result.to_dict() if isinstance(result, MultiTaskResult) else result
    baseline = baseline.to_dict() if isinstance(baseline, MultiTaskResult) else baseline
    terms = []
    for task, metric in result["primary"].items():
        if task not in baseline["per_task"] or metric not in baseline["per_task"][task]:
            raise ValueError(f"the baseline has no {metric} for task {task!r}")
        m, b = result["per_task"][task][metric], baseline["per_task"][task][metric]
        terms.append((-1 if metric in LOWER_IS_BETTER else 1) * (m - b) / b)
    return 100 * sum(terms) / len(terms)


@dataclass
class MultiTaskMetrics(EvalProtocol):
    """Every example of one split, every task's metrics (the split is small enough to evaluate whole)."""

    result_type: ClassVar[type[Result]] = MultiTaskResult

    data: MultiTaskData
    split: str = "test"

    def evaluate(self, model: nn.Module, dist: DistContext = SINGLE) -> Result:
        return evaluate_multitask(model, self.data, self.split)


__all__ = ["MultiTaskMetrics", "MultiTaskResult", "delta_m", "evaluate_multitask", "predictions", "regression_metrics"]
