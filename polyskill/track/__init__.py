"""Optional experiment trackers (TensorBoard, MLflow) fed the same records as metrics.jsonl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..train.episodic import RecordSink


def open_trackers(names: list[str], out: Path, config: dict[str, Any]) -> list[RecordSink]:
    """One sink per logger name; metrics.jsonl stays the run's source of truth."""
    if names:
        raise ConfigError(f"train.loggers: {', '.join(names)} not available yet")
    return []
