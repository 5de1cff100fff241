"""Table cells for runs: a metric's value in its unit, a run's best validation, its test results, a duration."""

from __future__ import annotations

import math

from ..eval import Result, ValidationRecord

PERCENT_METRICS = ("accuracy", "explained_variance")  # fractions that people read as percentages


def format_metric(metric: str, value: float) -> str:
    """80.12% for a fraction read as a percentage, `mse 0.01234` for any other metric."""
    if metric in PERCENT_METRICS:
        return f"{100 * value:.2f}%"
    return f"{metric} {value:.4g}"


def format_validation(validation: ValidationRecord | None) -> str:
    """The best validation figure, '-' when the run has none."""
    if validation is None or validation.best is None:
        return "-"
    return format_metric(validation.metric, validation.best)


def format_results(results: list[Result]) -> str:
    """Every result in one short cell: `5w1s 98.60±0.17%, 5w5s 99.61±0.06%`, '-' for none."""
    return ", ".join(f"{r.label} {r.formatted()}" for r in results) or "-"


def format_seconds(seconds: float | None) -> str:
    """12s, 6m05s, 1h02m; '-' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


__all__ = ["PERCENT_METRICS", "format_metric", "format_results", "format_seconds", "format_validation"]
