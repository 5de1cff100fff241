"""The return against adaptation steps of rl runs (trained and freshly initialised policies), as one PNG: the figure
docs/results.md shows for the MAML paper's comparison.

    .venv/bin/python scripts/rl_figure.py runs/navigation2d-maml runs/navigation2d-pretrained --out docs/rl-nav.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from polyskill.report.plots import adaptation_figure, png
from polyskill.rundir import read_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    figure = adaptation_figure([read_run(run) for run in args.runs])
    if figure is None:
        raise SystemExit("no run has a test result with an adaptation curve")
    args.out.write_bytes(png(figure))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
