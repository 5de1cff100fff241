"""Train a multi-task recipe under several aggregators and architectures, then print a markdown results table
(per-task metrics, the overall figure and delta-m against the single-task baseline) for docs/results.md.

    POLYSKILL_DATA=../shared/data .venv/bin/python scripts/mtl_table.py multifashion --out runs/table
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from polyskill.mtl import AGGREGATOR_NAMES, ARCHITECTURE_NAMES

WEIGHTINGS = list(AGGREGATOR_NAMES)
ARCHITECTURES = [a for a in ARCHITECTURE_NAMES if a != "single"]  # every registered one but the baseline


def configurations(weightings: list[str], architectures: list[str]) -> list[tuple[str, list[str]]]:
    """(label, --set overrides): the single-task baseline first, then hard sharing under every weighting,
    then every architecture under equal weighting."""
    out = [("single-task baseline", ["mtl.architecture=single", "mtl.weighting=ew"])]
    out += [(f"hps + {w}", ["mtl.architecture=hps", f"mtl.weighting={w}"]) for w in weightings]
    out += [(f"{a} + ew", [f"mtl.architecture={a}", "mtl.weighting=ew"]) for a in architectures if a != "hps"]
    return out


def train(recipe: str, label: str, overrides: list[str], out: Path, baseline: Path | None) -> dict:
    """Train one configuration (unless its run is complete already) and return its summary."""
    run = out / label.replace(" + ", "-").replace(" ", "-")
    if not (run / "summary.json").is_file() or "test" not in json.loads((run / "summary.json").read_text()):
        args = [sys.executable, "-m", "polyskill.cli", "train", recipe, "--out", str(run), "--quiet"]
        args += [a for o in overrides for a in ("--set", o)]
        if baseline is not None:
            args += ["--set", f"mtl.baseline={baseline}"]
        if run.exists():
            subprocess.run(["rm", "-rf", str(run)], check=True)
        started = time.time()
        done = subprocess.run(args, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{label}: {done.stderr.strip()}")
        print(f"{label}: {time.time() - started:.0f} s", file=sys.stderr)
    return json.loads((run / "summary.json").read_text()) | {"run": str(run)}


def row(label: str, summary: dict, tasks: list[str]) -> str:
    test = summary["test"][-1]
    cells = []
    for task in tasks:
        metric = test["primary"][task]
        value = test["per_task"][task][metric]
        cells.append(f"{100 * value:.2f}" if metric == "accuracy" else f"{value:.3f}")
    overall = test["overall"]
    if "accuracy" in overall:
        cells.append(f"{100 * overall['accuracy']:.2f}")
    else:
        cells += [f"{100 * overall['explained_variance']:.1f}", f"{overall['rmse']:.3f}"]
    dm = test.get("delta_m")
    cells.append("0 (reference)" if "single" in label else (f"{dm:+.2f}" if dm is not None else "n/a"))
    cells.append(f"{summary['train_seconds']:.0f}")
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", help="a multi-task recipe whose mtl.architecture/weighting are varied")
    parser.add_argument("--out", default="runs/table", help="folder for the runs")
    parser.add_argument("--weightings", default=",".join(WEIGHTINGS))
    parser.add_argument("--architectures", default=",".join(ARCHITECTURES))
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra override for every run")
    parser.add_argument("--per-task", action="store_true", help="a column per task (few tasks only)")
    args = parser.parse_args()
    out = Path(args.out) / args.recipe
    configs = configurations(
        [w for w in args.weightings.split(",") if w], [a for a in args.architectures.split(",") if a]
    )
    summaries = []
    baseline = None
    for label, overrides in configs:
        summary = train(args.recipe, label, overrides + args.overrides, out, baseline)
        if baseline is None:
            baseline = Path(summary["run"])
        summaries.append((label, summary))
    first = summaries[0][1]["test"][-1]
    tasks = list(first["per_task"]) if args.per_task else []
    overall = ["mean accuracy %"] if "accuracy" in first["overall"] else ["explained variance %", "RMSE"]
    head = [f"{t} ({first['primary'][t]})" for t in tasks] + overall + ["delta-m %", "train s"]
    print("| configuration | " + " | ".join(head) + " |")
    print("|---|" + "---|" * len(head))
    for label, summary in summaries:
        print(row(label, summary, tasks))


if __name__ == "__main__":
    main()
