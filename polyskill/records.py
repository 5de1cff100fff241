"""Metrics records (one JSON object per logged step): the protocol of what consumes them and the reader of the file
that keeps them, so the trainer, trackers, reports and run listings share both without importing each other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol


class RecordSink(Protocol):
    """Receives every record the trainer writes to metrics.jsonl (a tracker, a sweep's pruner)."""

    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def read_records(path: Path) -> list[dict[str, Any]]:
    """The complete records of a metrics.jsonl file, in order; a torn line, a line that is not a JSON object and a
    line with bytes that are not UTF-8 are skipped (a crash or a damaged disk must not make a run unreadable)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_bytes().splitlines():
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
