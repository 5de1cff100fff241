"""Reading trained runs for the results tables: each run directory's config and summary."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml


def summaries(runs: list[Path]) -> Iterator[tuple[Path, dict, dict]]:
    """(run, config, summary) of every run that has finished (has a summary.json); the others are reported."""
    for run in runs:
        if not (run / "summary.json").is_file():
            print(f"skipping {run}: no summary.json", file=sys.stderr)
            continue
        yield run, yaml.safe_load((run / "config.yaml").read_text()), json.loads((run / "summary.json").read_text())
