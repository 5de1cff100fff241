"""Validation accuracy against training time of trained runs, and how much each gained in its last stretch.

    python scripts/val_curves.py runs/papers/*/ [--tail 0.33] [--plot docs/omniglot-papers-curves.png]

For each run directory (its metrics.jsonl): the validation curve as `step: accuracy @ minutes`, the best value
and its step, and the plateau test: the gain of the best validation accuracy over the last `--tail` share of the
training time (a run whose best moved by under a point there has flattened at its validation noise). `--plot`
also draws every curve against training minutes into one PNG.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def curve(run: Path) -> list[tuple[int, float, float]]:
    """(step, validation accuracy, minutes) of every validation the run recorded, in order (a line a running
    training is still writing is skipped)."""
    points = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        value = record.get("val_accuracy") if isinstance(record, dict) else None
        if value is not None:
            points.append((int(record["step"]), float(value), float(record.get("time", 0.0)) / 60))
    return points


def tail_gain(points: list[tuple[int, float, float]], share: float) -> float:
    """Best accuracy at the end minus best accuracy before the last `share` of the run's minutes, in points."""
    end = points[-1][2]
    before = [a for _, a, m in points if m <= end * (1 - share)]
    return 100 * (max(a for _, a, _ in points) - max(before)) if before else float("nan")


def plot(curves: dict[str, list[tuple[int, float, float]]], path: Path) -> None:
    """Validation accuracy (%) against training minutes, one line per run, into the PNG `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    styles = ("-", "--", ":")  # the colour cycle has 10 colours: past it, a line's style tells runs apart
    for i, (name, points) in enumerate(curves.items()):
        ax.plot(
            [m for _, _, m in points],
            [100 * a for _, a, _ in points],
            marker=".",
            linestyle=styles[i // 10 % len(styles)],
            label=name,
        )
    ax.set_xlabel("training minutes (the trainer's clock, one thread)")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--tail", type=float, default=1 / 3, help="share of the training time tested for a plateau")
    parser.add_argument("--plot", type=Path, help="also draw the curves into this PNG")
    args = parser.parse_args()
    drawn = {}
    for run in args.runs:
        if not (run / "metrics.jsonl").is_file():
            print(f"{run}: no metrics.jsonl")
            continue
        points = curve(run)
        if not points:
            print(f"{run.name}: no validation recorded")
            continue
        drawn[run.name] = points
        step, best, minutes = max(points, key=lambda p: p[1])
        shown = ", ".join(f"{s}: {100 * a:.1f} @ {m:.0f}" for s, a, m in points)
        gain = tail_gain(points, args.tail)
        print(
            f"- {run.name} (best {100 * best:.1f} at step {step}, {minutes:.0f} min; gain over the last "
            f"{100 * args.tail:.0f}% of {points[-1][2]:.0f} min: {gain:+.1f} points): {shown}"
        )
    if args.plot and drawn:
        plot(drawn, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
