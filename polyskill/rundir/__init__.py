"""Run directories as records: finding runs, reading each into one record, comparing them side by side."""

from ..train.run_status import read_status
from .catalog import RunRecord, find_runs, read_run
from .compare import compare_table, differing, runs_table

__all__ = ["RunRecord", "compare_table", "differing", "find_runs", "read_run", "read_status", "runs_table"]
