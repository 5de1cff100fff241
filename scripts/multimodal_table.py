"""Multimodal few-shot regression results of trained runs as a markdown table: query MSE +- 95% interval
after adaptation, one column per number of modes.

    python scripts/multimodal_table.py runs/multimodal/*/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from run_summaries import summaries

ABLATIONS = {"encoder": "no encoder", "memory": "no memory attention", "film": "no FiLM", "rates": "no learned rates"}


def label(config: dict) -> str:
    """A row name: the method, and for the task-conditioned learner the part it goes without."""
    algo = config["algo"]
    if algo["name"] == "task_conditioned":
        missing = [text for key, text in ABLATIONS.items() if algo.get(key) in (False, "fixed")]
        return "task-conditioned" + (f" ({', '.join(missing)})" if missing else "")
    if algo.get("inner_steps") == 0:
        return "multi-task pretrained + fine-tuning"
    name = "Meta-SGD" if algo.get("learn_lr") == "per_parameter" else algo["name"].upper()
    lr = config.get("train", {}).get("lr", 1e-3)
    return name if lr == 1e-3 else f"{name} (outer lr {lr:g})"


def diverged(run: Path) -> str | None:
    """ "diverged (NaN by step N)" when the run's log (RUN.log beside it) says it stopped so."""
    log = run.parent / f"{run.name}.log"
    if log.is_file() and "diverged at step" in log.read_text():
        return "diverged (NaN by step " + log.read_text().split("diverged at step ")[1].split()[0] + ")"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    rows: dict[str, dict[int, str]] = {}
    seconds: dict[str, list[float]] = {}
    modes_seen: set[int] = set()
    for _run, config, summary in summaries(args.runs):
        modes = config["data"]["modes"]
        modes_seen.add(modes)
        name = label(config)
        for result in summary.get("test", []):
            rows.setdefault(name, {})[modes] = f"{result['mse']:.3f} ± {result['ci95']:.3f}"
        seconds.setdefault(name, []).append(float(summary.get("train_seconds") or 0))
    for run in args.runs:
        note = diverged(run)
        if note and (run / "config.yaml").is_file() and not (run / "summary.json").is_file():
            config = yaml.safe_load((run / "config.yaml").read_text())
            modes_seen.add(config["data"]["modes"])
            rows.setdefault(label(config), {})[config["data"]["modes"]] = note
            seconds.setdefault(label(config), [])
    columns = sorted(modes_seen)
    print("| method | " + " | ".join(f"{m} modes" for m in columns) + " | train s per run |")
    print("|---|" + "---|" * len(columns) + "---|")
    for name, cells in rows.items():
        mean_s = f"{sum(seconds[name]) / len(seconds[name]):.0f}" if seconds.get(name) else "-"
        print(f"| {name} | " + " | ".join(cells.get(m, "-") for m in columns) + f" | {mean_s} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
