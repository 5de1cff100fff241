"""Multimodal few-shot regression results of trained runs as a markdown table: query MSE +- 95% interval
after adaptation, one column per number of modes.

    python scripts/multimodal_table.py runs/multimodal/*/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    return "Meta-SGD" if algo.get("learn_lr") == "per_parameter" else algo["name"].upper()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    rows: dict[str, dict[int, str]] = {}
    seconds: dict[str, list[float]] = {}
    modes_seen: set[int] = set()
    for run, config, summary in summaries(args.runs):
        modes = config["data"]["modes"]
        modes_seen.add(modes)
        name = label(config)
        for result in summary.get("test", []):
            rows.setdefault(name, {})[modes] = f"{result['mse']:.3f} ± {result['ci95']:.3f}"
        seconds.setdefault(name, []).append(float(summary.get("train_seconds") or 0))
    columns = sorted(modes_seen)
    print("| method | " + " | ".join(f"{m} modes" for m in columns) + " | train s per run |")
    print("|---|" + "---|" * len(columns) + "---|")
    for name, cells in rows.items():
        mean_s = sum(seconds[name]) / len(seconds[name])
        print(f"| {name} | " + " | ".join(cells.get(m, "-") for m in columns) + f" | {mean_s:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
