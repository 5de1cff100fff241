"""Figures of rl runs for docs/results.md: the return against adaptation steps (trained and freshly initialised
policies, from the test results), or with `--curves` the training return after adaptation (the return, for
learners that do not adapt in training) against wall-clock time, from metrics.jsonl.

    .venv/bin/python scripts/rl_figure.py runs/navigation2d-maml runs/navigation2d-pretrained --out docs/rl-nav.png
    .venv/bin/python scripts/rl_figure.py runs/navigation2d-maml runs/navigation2d-pretrained --curves --out c.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from polyskill.checked import finite
from polyskill.report.plots import adaptation_figure, colour, literal, new_figure, png
from polyskill.rundir import RunRecord, read_run


def curves_against_time(runs: list[RunRecord]):
    """Training return (after adaptation where the learner adapts) against training seconds, one line a run."""
    figure = new_figure(6.4, 4.6)
    axes = figure.subplots()
    for index, run in enumerate(runs):
        key = "return_after" if any("return_after" in r for r in run.records) else "return"
        points = [(finite(r.get("time")), finite(r.get(key))) for r in run.records]
        shown = [(x, y) for x, y in points if x is not None and y is not None]
        if shown:
            xs, ys = zip(*shown, strict=True)
            axes.plot([x / 60 for x in xs], ys, "-", color=colour(index), label=literal(f"{run.name} ({key})"))
    axes.set_xlabel("training time (minutes)")
    axes.set_ylabel("mean training return")
    axes.set_title("Training return against wall-clock time", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, frameon=False)
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--curves", action="store_true", help="training return against time instead")
    args = parser.parse_args()
    runs = [read_run(run) for run in args.runs]
    figure = curves_against_time(runs) if args.curves else adaptation_figure(runs)
    if figure is None:
        raise SystemExit("no run has a test result with an adaptation curve")
    args.out.write_bytes(png(figure))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
