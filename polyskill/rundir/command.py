"""`polyskill runs` and `polyskill compare`: find runs, and set a few side by side."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import RunError
from .compare import compare_table, problem_lines, runs_table
from .reader import RunRecord, find_runs, read_run, read_runs

SORT_KEYS = ("name", "best", "time", "started")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `runs` and `compare` subcommands."""
    runs = sub.add_parser(
        "runs",
        help="list the runs under a directory (default runs/)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  polyskill runs\n  polyskill runs sweeps/lr --sort best\n"
        "  polyskill runs runs/ --status finished --json",
    )
    runs.add_argument("dir", nargs="?", default="runs", help="a run directory or a folder of runs (default runs)")
    runs.add_argument(
        "--sort",
        choices=SORT_KEYS,
        default="name",
        help="order of the rows (default name; best: best validation first, in its direction)",
    )
    runs.add_argument("--status", help="only runs with this status (finished, running, interrupted, ...)")
    runs.add_argument("--json", action="store_true", help="one JSON object per run instead of a table")
    runs.set_defaults(handler=_runs)

    compare = sub.add_parser(
        "compare",
        help="compare runs side by side: configs that differ, and results",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  polyskill compare runs/protonet runs/maml\n"
        "  polyskill compare sweeps/lr/trial-0003 sweeps/lr/trial-0007",
    )
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    compare.set_defaults(handler=_compare)


def say(text: str, err: bool = False) -> None:
    """A command's output on stdout, or a note on stderr."""
    print(text, file=sys.stderr if err else sys.stdout)


def _best_first(record: RunRecord) -> float:
    """A sort key that puts the best validation first, in its metric's direction; runs without one last."""
    v = record.validation
    if v is None or v.best is None or v.best != v.best:
        return float("inf")
    return -v.best if v.higher_is_better else v.best


ORDER: dict[str, Callable[[RunRecord], Any]] = {
    "name": lambda r: r.name,
    "time": lambda r: -(r.wall_seconds or 0),
    "best": _best_first,
    "started": lambda r: r.info("started") or "",
}


def as_json(record: RunRecord) -> dict[str, Any]:
    """A run as `polyskill runs --json` prints it."""
    v = record.validation
    return {
        "run": str(record.path),
        "recipe": record.recipe,
        "kind": record.kind,
        "algorithm": record.algorithm,
        "dataset": record.dataset,
        "status": record.status,
        "validation": None
        if v is None
        else {"metric": v.metric, "higher_is_better": v.higher_is_better, "best": v.best, "best_step": v.best_step},
        "test": [r.to_dict() for r in record.test],
        "wall_seconds": record.wall_seconds,
        "problems": record.problems,
    }


def _runs(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if not root.exists():
        raise RunError(f"no directory at {root}: train a run first, or name the folder that holds your runs")
    base = root if not (root / "config.yaml").is_file() else root.parent
    records = []
    for path in find_runs(root):
        try:
            name = str(path.relative_to(base))
        except ValueError:
            name = str(path)
        records.append(read_run(path, name if name != "." else None))
    if args.status:
        records = [r for r in records if r.status == args.status]
    records.sort(key=ORDER[args.sort])
    if args.json:
        for r in records:
            say(json.dumps(as_json(r)))
        return 0
    if not records:
        say(f"no runs under {root}")
        return 0
    say(runs_table(records))
    damaged = sum(1 for r in records if r.problems)
    if damaged:
        say(f"{damaged} run(s) could not be read in full ('?' is unknown): `polyskill compare RUN` says what", err=True)
    return 0


def _compare(args: argparse.Namespace) -> int:
    records = read_runs(args.runs)
    say(compare_table(records))
    for line in problem_lines(records):
        say(f"note: {line}", err=True)
    return 0
