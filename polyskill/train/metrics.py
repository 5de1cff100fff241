"""metrics.jsonl: one JSON object per logged step, the run's source of truth for curves.

Reading skips every line that is not a JSON object (a torn last line, bytes that are not UTF-8, a damaged
record), so a damaged log costs the damaged lines, never the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from .checkpoint import write_text


class MetricsLog:
    """Appends one line per record and flushes it, so a crash loses at most the line being written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: TextIO | None = None

    def truncate_after(self, step: int) -> None:
        """Drop records logged after `step` (they belong to work a resumed run will redo), and any torn line."""
        if not self.path.exists():
            return
        kept = [line for line, record in _lines(self.path) if _step(record) <= step]
        write_text(self.path, "".join(k + "\n" for k in kept))

    def write(self, record: dict[str, Any]) -> None:
        """Append `record` as one line and flush it."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  kept open across writes, closed by close()
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file (a later write opens it again)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _step(record: dict[str, Any]) -> float:
    """A record's step (0 when it has none, or one that is not a number)."""
    step = record.get("step", 0)
    return step if isinstance(step, (int, float)) and not isinstance(step, bool) else 0


def _lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, record) for each line of `path` holding a JSON object, in order; the others (torn, not UTF-8, not an
    object) are skipped."""
    kept = []
    with open(path, "rb") as f:
        for raw in f:
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
                record = json.loads(line)
            except (UnicodeDecodeError, ValueError, RecursionError):
                continue
            if isinstance(record, dict):
                kept.append((line, record))
    return kept


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All complete records of a metrics.jsonl file (torn or damaged lines are skipped; no file: none)."""
    return [record for _, record in _lines(Path(path))] if Path(path).is_file() else []
