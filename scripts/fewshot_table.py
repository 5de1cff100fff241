"""Omniglot few-shot results of trained runs as a markdown table, next to the papers' figures.

    python scripts/fewshot_table.py runs/omniglot-matching-1shot runs/omniglot-matching-5shot ...

Each row is a run directory (its summary.json); a cell is test accuracy +- the 95% interval over the
evaluated episodes (the protocol's way and shot), taken from the run whose training shot matches when
several runs of one recipe are given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from run_summaries import summaries

SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))
#: 5w1s, 5w5s, 20w1s, 20w5s test accuracy (%), by row name (see `label`) or else by algorithm
PAPERS: dict[str, tuple[str, tuple[float | None, ...]]] = {
    "matching": ("Vinyals et al. 2016", (98.1, 98.9, 93.8, 98.5)),
    "relation": ("Sung et al. 2018", (99.6, 99.8, 97.6, 99.1)),
    "protonet": ("Snell et al. 2017", (98.8, 99.7, 96.0, 98.9)),
    "maml": ("Finn et al. 2017", (98.7, 99.9, 95.8, 98.9)),
    "reptile": ("Nichol et al. 2018, transductive", (97.7, None, None, None)),
    "maml (first_order=True)": ("Finn et al. 2017, first order", (98.3, None, None, None)),
}


def label(config: dict) -> str:
    """A row name: the algorithm and the options that set it apart (gradient clipping among them)."""
    algo = config.get("algo", {})
    name = algo.get("name", "?")
    shown = ("fce", "head", "cosine", "loss", "first_order", "head_only", "temperature", "normalize_query")
    defaults = {"temperature": 1.0, "normalize_query": True}  # what the plain learner has: not shown
    extras = [f"{k}={v}" for k, v in algo.items() if k in shown and v is not None and v != defaults.get(k, False)]
    if config.get("train", {}).get("grad_clip") is not None:
        extras.append(f"grad_clip={config['train']['grad_clip']}")
    if config.get("model", {}).get("init"):
        extras.append(f"init={Path(config['model']['init']).name}")
    return name + (f" ({', '.join(extras)})" if extras else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    rows: dict[str, dict] = {}
    for run, config, summary in summaries(args.runs):
        row = rows.setdefault(label(config), {"cells": {}, "runs": [], "algo": config["algo"]["name"]})
        row["runs"].append(f"{run.name}: {summary.get('steps')} steps, {summary.get('train_seconds')} s")
        train_shot = config.get("episodes", {}).get("shot")
        for result in summary.get("test", []):
            key = (result["way"], result["shot"])
            better = key not in row["cells"] or train_shot == result["shot"]
            if key in SETTINGS and better:
                row["cells"][key] = f"{100 * result['accuracy']:.1f} ± {100 * result['ci95']:.1f}"
    print("| algorithm | 5-way 1-shot | 5-way 5-shot | 20-way 1-shot | 20-way 5-shot | paper (same order) | runs |")
    print("|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        cells = [row["cells"].get(s, "-") for s in SETTINGS]
        source, numbers = PAPERS.get(name, PAPERS.get(row["algo"], ("not reported on Omniglot", ())))
        figures = " / ".join("-" if n is None else f"{n:.1f}" for n in numbers)
        paper = f"{figures} ({source})" if numbers else source
        print(f"| {name} | {' | '.join(cells)} | {paper} | {'; '.join(row['runs'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
