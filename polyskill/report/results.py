"""Test results as table cells, read through the typed results: each protocol's label, what identifies it, and its
headline value with its 95% confidence interval in the metric's unit."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..eval import MultiTaskResult, Result
from ..rundir import RunRecord, format_metric, higher_is_better

FIELD_NAMES = {
    "split": "split",
    "way": "way",
    "shot": "shot",
    "query": "query / class",
    "episodes": "episodes",
    "seed": "seed",
    "steps": "adaptation steps",
    "tasks": "tasks",
    "examples": "examples",
}
METRIC_NAMES = {
    "accuracy": "accuracy",
    "mse": "MSE",
    "explained_variance": "explained variance",
    "rmse": "RMSE",
    "mae": "MAE",
    "score": "score",
}
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


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric.replace("_", " "))


def _columns(results: list[Result]) -> tuple[list[str], list[str]]:
    """(identifying fields, extra measured fields) of results of one type: what tells protocols apart, and the
    figures measured beside the headline one."""
    names = [f.name for f in dataclasses.fields(results[0])]  # type: ignore[arg-type]
    kind = type(results[0])
    identifying = [
        n
        for n in names
        if n not in kind.measured and n != "weights" and any(getattr(r, n) is not None for r in results)
    ]
    extra = [n for n in names if n in kind.measured and n not in (kind.metric, "ci95")]
    return identifying, extra


def protocol_table(results: list[Result]) -> Rows:
    """Header and rows of results of one protocol type: label, identifying fields, other measured figures, the
    headline metric (with its 95% CI where measured) and the checkpoint it was measured with."""
    identifying, extra = _columns(results)
    metric = results[0].metric
    ci = " ± 95% CI" if any(r.interval is not None for r in results) else ""
    header = (
        ["protocol"]
        + [FIELD_NAMES.get(n, n) for n in identifying]
        + [metric_name(n) for n in extra]
        + [metric_name(metric) + ci, "weights"]
    )
    rows = [
        [r.label]
        + [number(getattr(r, n)) if getattr(r, n) is not None else "default" for n in identifying]
        + [number(getattr(r, n)) for n in extra]
        + [r.formatted(), str(getattr(r, "weights", None) or "n/a")]
        for r in results
    ]
    return header, rows


def protocol_groups(results: list[Result]) -> list[list[Result]]:
    """`results` grouped by type, in the order each type first appears (multi-task results are not included)."""
    groups: dict[type, list[Result]] = {}
    for r in results:
        if not isinstance(r, MultiTaskResult):
            groups.setdefault(type(r), []).append(r)
    return list(groups.values())


def multitask_tables(result: MultiTaskResult) -> tuple[Rows, Rows]:
    """Overall metrics (metric, value, with delta-m when measured) and the per-task table (task, primary metric,
    every metric, examples)."""
    overall = [[metric_name(k), number(v)] for k, v in result.overall.items()]
    if result.delta_m is not None:
        overall.append(
            [
                f"delta-m against {result.baseline or 'the single-task baseline'}",
                f"{result.delta_m:+.2f} % (positive: better than single-task)",
            ]
        )
    names = list(dict.fromkeys(k for m in result.per_task.values() for k in m if k != "n"))
    header = ["task", "primary metric"] + [metric_name(k) for k in names] + ["examples"]
    rows = []
    for task, metrics in result.per_task.items():
        first = result.primary.get(task, "")
        direction = "higher" if higher_is_better(first) else "lower"
        rows.append(
            [task, f"{metric_name(first)} ({direction} is better)" if first else "n/a"]
            + [
                number(100 * metrics[k], 4) + " %" if k == "accuracy" and k in metrics else number(metrics.get(k))
                for k in names
            ]
            + [number(metrics.get("n"))]
        )
    return (["metric", "value"], overall), (header, rows)


def headline_columns(run: RunRecord) -> dict[str, str]:
    """The run's test results as {column name: cell} for a comparison table across runs."""
    return {r.label: r.formatted() for r in run.test}


def best_validation(run: RunRecord) -> str:
    """The best validation value, its step and direction, e.g. "80.12% at step 345 (higher is better)", or "n/a"."""
    v = run.validation
    if v is None or v.best is None:
        return "n/a"
    step = f" at step {v.best_step}" if v.best_step is not None else ""
    return (
        f"{format_metric(v.metric, v.best)}{step} ({metric_name(v.metric)}, "
        f"{'higher' if v.higher_is_better else 'lower'} is better)"
    )
