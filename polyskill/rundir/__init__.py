"""A run directory as a record: its status and environment (run.json), and finding and comparing runs."""

from .status import end_run, environment, read_status, start_run

__all__ = ["end_run", "environment", "read_status", "start_run"]
