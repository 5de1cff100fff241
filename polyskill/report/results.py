"""Test results as table cells: protocol names, metric values with their 95% confidence intervals."""

from __future__ import annotations

import math
from typing import Any

from .collect import RunData

KEYS = {"split": "split", "way": "way", "shot": "shot", "query": "query / class", "episodes": "episodes",
        "seed": "seed", "steps": "adaptation steps", "tasks": "tasks", "examples": "examples"}
METRICS = {"accuracy": "accuracy (%)", "mse": "MSE", "explained_variance": "explained variance",
           "rmse": "RMSE", "mae": "MAE"}
LOWER_BETTER = {"mse", "rmse", "mae"}
Rows = tuple[list[str], list[list[str]]]  # a table's header and rows


def number(value: Any, digits: int = 4) -> str:
    """A number for a table cell: `digits` significant figures, "n/a" for missing or NaN."""
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def metric_cell(result: dict[str, Any], metric: str) -> str:
    """`metric` of a result, with "± CI" when the result carries ci95 for it (accuracy is shown in %)."""
    value, ci = result.get(metric), result.get("ci95")
    if not isinstance(value, (int, float)):
        return "n/a"
    if metric == "accuracy":
        text = f"{100 * value:.2f}"
        return text + (f" ± {100 * ci:.2f}" if isinstance(ci, (int, float)) else "")
    return number(value) + (f" ± {ci:.2g}" if metric == "mse" and isinstance(ci, (int, float)) else "")


def metrics_of(results: list[dict[str, Any]]) -> list[str]:
    """The metrics present in `results`, best known first (accuracy, MSE, explained variance, ...)."""
    return [m for m in METRICS if any(isinstance(r.get(m), (int, float)) for r in results)]


def protocol_name(result: dict[str, Any]) -> str:
    """A short name for a test protocol, e.g. "5-way 1-shot", "5-shot", "test, 1 steps"."""
    parts = []
    if result.get("way") is not None:
        parts.append(f"{result['way']}-way")
    if result.get("shot") is not None:
        parts.append(f"{result['shot']}-shot")
    name = " ".join(parts) or str(result.get("split", "test"))
    if result.get("steps") is not None:
        name += f", {result['steps']} adaptation steps"
    return name


def headline(result: dict[str, Any]) -> str:
    """The protocol's main metric as one cell, e.g. "98.60 ± 0.17 %" or "MSE 1.653 ± 0.24"."""
    metrics = metrics_of([result])
    if not metrics:
        return "n/a"
    metric = metrics[0]
    cell = metric_cell(result, metric)
    return f"{cell} %" if metric == "accuracy" else f"{METRICS[metric]} {cell}"


def protocol_table(results: list[dict[str, Any]]) -> Rows:
    """Header and rows of a run's test protocols: what identifies each, then each metric, then the weights used."""
    keys = [k for k in KEYS if any(r.get(k) is not None for r in results)]
    metrics = metrics_of(results)
    header = ["protocol"] + [KEYS[k] for k in keys]
    header += [METRICS[m] + (" ± 95% CI" if m in ("accuracy", "mse") and any("ci95" in r for r in results) else "")
               for m in metrics] + ["weights"]
    rows = [[protocol_name(r)] + [number(r.get(k)) if r.get(k) is not None else "default" for k in keys]
            + [metric_cell(r, m) for m in metrics] + [str(r.get("weights", "n/a"))] for r in results]
    return header, rows


def multitask_tables(test: dict[str, Any]) -> tuple[Rows, Rows]:
    """Overall metrics (metric, value) and the per-task table (task, primary metric, every metric, examples)."""
    overall = [[METRICS.get(k, k), number(v)] for k, v in (test.get("overall") or {}).items()]
    per_task: dict[str, dict[str, Any]] = test.get("per_task") or {}
    primary: dict[str, str] = test.get("primary") or {}
    names = list(dict.fromkeys(k for m in per_task.values() for k in m if k != "n"))
    header = ["task", "primary metric"] + [METRICS.get(k, k) for k in names] + ["examples"]
    rows = []
    for task, metrics in per_task.items():
        first = primary.get(task, "")
        rows.append([task, f"{METRICS.get(first, first)} ({'lower' if first in LOWER_BETTER else 'higher'} is better)"
                     if first else "n/a"]
                    + [number(100 * metrics[k], 4) + " %" if k == "accuracy" and isinstance(metrics.get(k), float)
                       else number(metrics.get(k)) for k in names] + [number(metrics.get("n"))])
    return (["metric", "value"], overall), (header, rows)


def headline_columns(run: RunData) -> dict[str, str]:
    """The run's test results as {column name: cell} for a comparison table across runs."""
    if run.protocols:
        return {protocol_name(p): headline(p) for p in run.protocols}
    overall = run.multitask_test.get("overall") or {}
    return {f"overall {METRICS.get(k, k)}": number(v) for k, v in overall.items()}


def best_validation(run: RunData) -> str:
    """The best validation value and its step, e.g. "80.12 % at step 345", or "n/a"."""
    for key, percent in (("best_val_acc", True), ("best_val_score", False)):
        value = run.summary.get(key)
        if isinstance(value, (int, float)):
            shown = f"{100 * value:.2f} %" if percent else number(value)
            step = run.summary.get("best_step")
            return shown + (f" at step {step}" if step is not None else "")
    return "n/a"
