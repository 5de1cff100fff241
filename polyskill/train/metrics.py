"""metrics.jsonl: one JSON object per logged step, the run's source of truth for curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .checkpoint import write_text


class MetricsLog:
    """Appends one line per record and flushes it, so a crash loses at most the line being written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = None

    def truncate_after(self, step: int) -> None:
        """Drop records logged after `step` (they belong to work a resumed run will redo), and any torn line."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("step", 0) <= step:
                kept.append(line)
        write_text(self.path, "".join(k + "\n" for k in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a")
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All complete records of a metrics.jsonl file (a torn last line is skipped)."""
    records = []
    if Path(path).exists():
        for line in Path(path).read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return records
