"""Multi-task evaluation: per-task metrics (`polyskill.mtl.metrics`) and delta-m against single-task baselines.

delta-m (Maninis et al., 2019), in percent, positive = better than single-task:
    delta_m = 100 / T * sum_t (-1)^{l_t} (M_t - B_t) / B_t
with M_t the multi-task model's primary metric on task t, B_t the single-task baseline's, l_t = 1 when lower
is better (RMSE) and 0 when higher is better (accuracy).
"""

from __future__ import annotations

from typing import Any

from ..mtl.metrics import MultiTaskResult, evaluate_multitask, predictions


def delta_m(result: dict[str, Any], baseline: dict[str, Any]) -> float:
    """delta-m in percent of `result` against `baseline` (both `MultiTaskResult.to_dict()`s of the same tasks)."""
    terms = []
    for task, metric in result["primary"].items():
        if task not in baseline["per_task"]:
            raise ValueError(f"the baseline has no task {task!r}")
        m, b = result["per_task"][task][metric], baseline["per_task"][task][metric]
        lower_better = metric == "rmse"
        terms.append((-1 if lower_better else 1) * (m - b) / b)
    return 100 * sum(terms) / len(terms)


__all__ = ["MultiTaskResult", "delta_m", "evaluate_multitask", "predictions"]
