"""Train a multi-task recipe and its single-task baseline on several random data splits (`data.split_seed`) and
print the mean and standard deviation of the test figures and delta-m, as the School protocol (ten random 75/25
splits) asks.

    POLYSKILL_DATA=../shared/data .venv/bin/python scripts/mtl_splits.py school-hps school-single --seeds 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


def train(recipe: str, run: Path, overrides: list[str]) -> dict:
    """Train into `run` unless a finished, evaluated run is there already; return its summary."""
    summary = run / "summary.json"
    if not summary.is_file() or "test" not in json.loads(summary.read_text()):
        subprocess.run(["rm", "-rf", str(run)], check=True)
        args = [sys.executable, "-m", "polyskill.cli", "train", recipe, "--out", str(run), "--quiet"]
        done = subprocess.run(args + [a for o in overrides for a in ("--set", o)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{recipe} ({run}): {done.stderr.strip()}")
    return json.loads(summary.read_text())


def spread(values: list[float]) -> str:
    return f"{statistics.fmean(values):.2f} +- {statistics.stdev(values) if len(values) > 1 else 0.0:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", help="the multi-task recipe")
    parser.add_argument("baseline", help="its single-task baseline recipe")
    parser.add_argument("--seeds", type=int, default=10, help="split seeds 0..N-1")
    parser.add_argument("--out", default="runs/splits")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="override for both recipes")
    args = parser.parse_args()
    out = Path(args.out)
    rows = {"baseline": [], "multi-task": [], "delta-m": []}
    metric = None
    for seed in range(args.seeds):
        split = [f"data.split_seed={seed}", *args.overrides]
        base_run = out / f"{args.baseline}-{seed}"
        base = train(args.baseline, base_run, split)
        multi = train(args.recipe, out / f"{args.recipe}-{seed}", [*split, f"mtl.baseline={base_run}"])
        metric = metric or ("accuracy" if "accuracy" in multi["test"][-1]["overall"] else "explained_variance")
        rows["baseline"].append(100 * base["test"][-1]["overall"][metric])
        rows["multi-task"].append(100 * multi["test"][-1]["overall"][metric])
        rows["delta-m"].append(multi["test"][-1]["delta_m"])
        print(
            f"split {seed}: baseline {rows['baseline'][-1]:.2f}, multi-task {rows['multi-task'][-1]:.2f}, "
            f"delta-m {rows['delta-m'][-1]:+.2f}",
            file=sys.stderr,
        )
    print(f"| {args.seeds} splits | {args.baseline} {metric} % | {args.recipe} {metric} % | delta-m % |")
    print("|---|---|---|---|")
    print(f"| mean +- sd | {spread(rows['baseline'])} | {spread(rows['multi-task'])} | {spread(rows['delta-m'])} |")


if __name__ == "__main__":
    main()
