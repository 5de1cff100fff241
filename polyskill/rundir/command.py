"""`polyskill runs` and `polyskill compare`: find runs, and set a few side by side."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import RunError
from .catalog import find_runs, read_run
from .compare import compare_table, runs_table

SORT_KEYS = ("name", "best", "time", "started")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `runs` and `compare` subcommands."""
    runs = sub.add_parser("runs", help="list the runs under a directory (default runs/)",
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog="examples:\n  polyskill runs\n  polyskill runs sweeps/lr --sort best\n"
                                 "  polyskill runs runs/ --status finished --json")
    runs.add_argument("dir", nargs="?", default="runs", help="a run directory or a folder of runs (default runs)")
    runs.add_argument("--sort", choices=SORT_KEYS, default="name", help="order of the rows (default name)")
    runs.add_argument("--status", help="only runs with this status (finished, running, interrupted, ...)")
    runs.add_argument("--json", action="store_true", help="one JSON object per run instead of a table")
    runs.set_defaults(handler=_runs)

    compare = sub.add_parser("compare", help="compare runs side by side: configs that differ, and results",
                             formatter_class=argparse.RawDescriptionHelpFormatter,
                             epilog="examples:\n  polyskill compare runs/protonet runs/maml\n"
                                    "  polyskill compare sweeps/lr/trial-0003 sweeps/lr/trial-0007")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    compare.set_defaults(handler=_compare)


def _runs(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if not root.exists():
        raise RunError(f"no directory at {root}: train a run first, or name the folder that holds your runs")
    base = root if not (root / "config.yaml").is_file() else root.parent
    records = [read_run(path, relative_to=base) for path in find_runs(root)]
    if args.status:
        records = [r for r in records if r.status == args.status]
    order = {"name": lambda r: r.name, "time": lambda r: -(r.wall_seconds or 0),
             "best": lambda r: -(r.best_val if r.best_val is not None else float("-inf")),
             "started": lambda r: r.started or ""}
    records.sort(key=order[args.sort])
    if args.json:
        for r in records:
            print(json.dumps({"run": str(r.path), "recipe": r.recipe, "algorithm": r.algorithm,
                              "dataset": r.dataset, "status": r.status, "best_val": r.best_val,
                              "val_metric": r.val_metric, "test": r.test, "wall_seconds": r.wall_seconds}))
        return 0
    if not records:
        print(f"no runs under {root}")
        return 0
    print(runs_table(records))
    return 0


def _compare(args: argparse.Namespace) -> int:
    records = [read_run(path) for path in args.runs]
    names = [r.name for r in records]
    if len(set(names)) < len(names):
        for r in records:
            r.name = str(r.path)
    print(compare_table(records))
    return 0

