"""Run directories as records: finding runs, reading each into one typed record, comparing them side by side."""

from .compare import compare_table, differing, flatten, runs_table
from .format import format_metric, format_results, format_seconds, format_validation
from .reader import Affinity, RunRecord, find_runs, higher_is_better, is_run, read_run, read_runs, short_names

__all__ = [
    "Affinity",
    "RunRecord",
    "compare_table",
    "differing",
    "find_runs",
    "flatten",
    "format_metric",
    "format_results",
    "format_seconds",
    "format_validation",
    "higher_is_better",
    "is_run",
    "read_run",
    "read_runs",
    "runs_table",
    "short_names",
]
