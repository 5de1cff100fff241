"""metrics.jsonl records read back: complete JSON objects in order, whatever a crash or a bad disk left around them."""

from __future__ import annotations

import json
from pathlib import Path

from polyskill.records import read_records


def test_records_come_back_in_order(tmp_path: Path):
    records = [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0, "val_acc": 0.5}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert read_records(tmp_path / "metrics.jsonl") == records


def test_damaged_lines_are_skipped_and_the_rest_kept(tmp_path: Path):
    """A torn last line, bytes that are not UTF-8, a JSON value that is not an object, a line nested beyond the
    parser's recursion limit: each is skipped, and every good record around them is kept."""
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(
        b'{"step": 1, "loss": 3.0}\n'
        b'{"step": 2, "loss": "\xff\xfe"}\n'
        b"[1, 2, 3]\n" + b"[" * 100_000 + b"\n"
        b'{"step": 3, "loss": 1.0}\r\n'
        b'{"step": 4, "lo'
    )
    assert read_records(path) == [{"step": 1, "loss": 3.0}, {"step": 3, "loss": 1.0}]


def test_a_missing_file_has_no_records(tmp_path: Path):
    assert read_records(tmp_path / "metrics.jsonl") == []
    (tmp_path / "metrics.jsonl").mkdir()
    assert read_records(tmp_path / "metrics.jsonl") == []
