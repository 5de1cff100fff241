"""Every weighting (under hard sharing) and every architecture (under equal weighting) on several multi-task
recipes, over several training seeds: mean and standard deviation of the test figure and of delta-m against the
same seed's single-task baseline, and the mean rank across the recipes; markdown tables on stdout, every number in
a JSON file, and a figure of delta-m with error bars.

    POLYSKILL_DATA=../shared/data .venv/bin/python scripts/mtl_seeds.py multifashion-hps:500 school-hps:500 \\
        parkinsons-subjects-hps:1000 --seeds 3 --jobs 2 --out runs/seeds --figure docs/mtl-seeds.png

Each `RECIPE:STEPS` trains for STEPS steps, validating every STEPS / 2, and is tested at its best validation
checkpoint. Runs are made in `--jobs` worker processes of one thread each, in-process (the data set is loaded once
per worker); a finished run is not trained again, so the command resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

WEIGHTINGS_HEAD = "hps+"


def configurations(weightings: list[str], architectures: list[str], aggregator: str) -> list[tuple[str, list[str]]]:
    """(label, overrides): the single-task baseline, hard sharing under every weighting, every other architecture
    under equal weighting, and cross-stitch under `aggregator` with its towers private (the default) and shared."""
    out = [("single", ["mtl.architecture=single", "mtl.weighting=ew"])]
    out += [(f"hps+{w}", ["mtl.architecture=hps", f"mtl.weighting={w}"]) for w in weightings]
    out += [(f"{a}+ew", [f"mtl.architecture={a}", "mtl.weighting=ew"]) for a in architectures]
    if aggregator:
        stitch = ["mtl.architecture=cross_stitch", f"mtl.weighting={aggregator}"]
        out += [
            (f"cross_stitch+{aggregator}", stitch),
            (f"cross_stitch+{aggregator} (towers shared)", [*stitch, "mtl.architecture_options.share_towers=true"]),
        ]
    return out


def run_folder(out: Path, recipe: str, label: str, seed: int) -> Path:
    safe = label.replace("+", "-").replace(" (towers shared)", "-towers")
    return out / recipe / safe / f"seed{seed}"


def finished(run: Path) -> dict[str, Any] | None:
    path = run / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    return summary if "test" in summary else None


def work(job: tuple[str, int, int, list[str], str]) -> tuple[str, float, str]:
    """Train one run in this worker process (one thread); returns (folder, seconds, error or '')."""
    recipe_name, steps, seed, overrides, folder = job
    import shutil

    import torch

    from polyskill.errors import PolyskillError
    from polyskill.recipes import load
    from polyskill.recipes.runner import train_run

    torch.set_num_threads(1)
    run = Path(folder)
    if finished(run) is not None:
        return folder, 0.0, ""
    shutil.rmtree(run, ignore_errors=True)
    sets = [
        *overrides,
        f"train.seed={seed}",
        f"train.steps={steps}",
        f"train.val_every={max(1, steps // 2)}",
        f"train.log_every={max(1, steps // 10)}",
        "mtl.baseline=null",
    ]
    started = time.perf_counter()
    try:
        train_run(load(recipe_name, sets), run, progress=False, echo=lambda _: None)
    except PolyskillError as exc:
        return folder, time.perf_counter() - started, str(exc)
    except Exception as exc:  # a failing method must not stop the other runs; it is reported and left out
        return folder, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
    return folder, time.perf_counter() - started, ""


def spread(values: list[float], digits: int = 2) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"


def collect(
    out: Path, recipes: list[str], configs: list[tuple[str, list[str]]], seeds: int
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """{recipe: {label: {"metric": [...], "delta_m": [...], "seconds": [...]}}} over the finished seeds."""
    from polyskill.eval.multitask import delta_m

    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    for recipe in recipes:
        rows: dict[str, dict[str, list[float]]] = {}
        for label, _ in configs:
            row: dict[str, list[float]] = {"metric": [], "delta_m": [], "seconds": []}
            for seed in range(seeds):
                summary = finished(run_folder(out, recipe, label, seed))
                base = finished(run_folder(out, recipe, "single", seed))
                if summary is None or base is None:
                    continue
                test, base_test = summary["test"][-1], base["test"][-1]
                overall = test["overall"]
                row["metric"].append(100 * overall.get("accuracy", overall.get("explained_variance", float("nan"))))
                row["delta_m"].append(delta_m(test, base_test))
                row["seconds"].append(summary.get("train_seconds", float("nan")))
            rows[label] = row
        table[recipe] = rows
    return table


def mean_ranks(table: dict[str, dict[str, dict[str, list[float]]]], labels: list[str]) -> dict[str, float]:
    """Each label's rank by mean delta-m (1 = best) among the labels run on every recipe, averaged over the
    recipes; nan for a label missing somewhere."""
    complete = [label for label in labels if all(rows[label]["delta_m"] for rows in table.values())]
    ranks: dict[str, list[float]] = {label: [] for label in complete}
    for rows in table.values():
        means = sorted(complete, key=lambda label: -statistics.fmean(rows[label]["delta_m"]))
        for position, label in enumerate(means, start=1):
            ranks[label].append(position)
    return {label: statistics.fmean(ranks[label]) if label in ranks else float("nan") for label in labels}


def markdown(table: dict[str, dict[str, dict[str, list[float]]]], labels: list[str], title: str) -> str:
    """The table of mean ± sd per data set, the mean rank over every data set, and, when some configuration
    misses a data set, a second mean rank over the data sets every configuration ran on."""
    recipes = list(table)
    ranks = mean_ranks(table, labels)
    common = [r for r in recipes if all(table[r][label]["delta_m"] for label in labels)]
    partial = mean_ranks({r: table[r] for r in common}, labels) if common and len(common) < len(recipes) else None
    head = [f"{r} test %" for r in recipes] + [f"{r} delta-m %" for r in recipes] + ["mean rank"]
    if partial is not None:
        head.append(f"mean rank ({', '.join(common)})")
    lines = [f"**{title}**", "", "| configuration | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]

    def order(label: str) -> tuple[bool, float, float]:
        second = partial[label] if partial is not None else 0.0
        return (ranks[label] != ranks[label], ranks[label] if ranks[label] == ranks[label] else second, second)

    for label in sorted(labels, key=order):
        cells = []
        for key in ("metric", "delta_m"):
            for r in recipes:
                values = table[r][label][key]
                cells.append(spread(values) if values else "n/a")
        cells.extend(
            f"{rank[label]:.2f}" if rank[label] == rank[label] else "n/a"
            for rank in [ranks] + ([partial] if partial is not None else [])
        )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(table: dict[str, dict[str, dict[str, list[float]]]], labels: list[str], path: Path) -> None:
    """delta-m (mean, error bar one standard deviation over the seeds) of every configuration, one panel per
    recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recipes = list(table)
    fig, axes = plt.subplots(1, len(recipes), figsize=(5 * len(recipes), 0.28 * len(labels) + 1.5), sharey=True)
    axes = axes if len(recipes) > 1 else [axes]
    for ax, recipe in zip(axes, recipes, strict=True):
        rows = table[recipe]
        means = [
            statistics.fmean(rows[label]["delta_m"]) if rows[label]["delta_m"] else float("nan") for label in labels
        ]
        sds = [statistics.stdev(rows[label]["delta_m"]) if len(rows[label]["delta_m"]) > 1 else 0.0 for label in labels]
        colours = ["tab:blue" if label.startswith(WEIGHTINGS_HEAD) else "tab:orange" for label in labels]
        ax.barh(range(len(labels)), means, xerr=sds, color=colours, capsize=2)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(recipe)
        ax.set_xlabel("delta-m % (vs single-task, mean ± sd over seeds)")
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].invert_yaxis()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipes", nargs="+", help="RECIPE:STEPS, each a multi-task recipe and its step budget")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes, one thread each")
    parser.add_argument("--out", default="runs/seeds")
    parser.add_argument("--weightings", default=None, help="comma-separated (default: every registered one)")
    parser.add_argument("--architectures", default=None, help="comma-separated (default: every registered one)")
    parser.add_argument("--towers", default="mgda", help="aggregator of the cross-stitch towers pair ('' to skip)")
    parser.add_argument(
        "--skip",
        default="",
        help="RECIPE:FOLDER,... configurations not to train (n/a in the tables), FOLDER as the run folder names them",
    )
    parser.add_argument("--figure", default=None, help="where to save the delta-m figure (.png)")
    parser.add_argument("--json", default=None, help="where to save every number (default OUT/seeds.json)")
    parser.add_argument("--collect-only", action="store_true", help="tabulate the finished runs, train nothing")
    args = parser.parse_args()

    from polyskill.mtl import AGGREGATOR_NAMES, ARCHITECTURE_NAMES

    weightings = args.weightings.split(",") if args.weightings else list(AGGREGATOR_NAMES)
    architectures = (
        args.architectures.split(",")
        if args.architectures
        else [a for a in ARCHITECTURE_NAMES if a not in ("single", "hps")]
    )
    configs = configurations(weightings, architectures, args.towers)
    budgets = []
    for item in args.recipes:
        name, _, steps = item.partition(":")
        if not steps.isdigit() or int(steps) < 1:
            parser.error(f"{item!r}: give each recipe as RECIPE:STEPS, STEPS a positive integer")
        budgets.append((name, int(steps)))
    out = Path(args.out)
    if not args.collect_only:
        # the baselines first, then one configuration at a time over its seeds, so a stopped command leaves whole rows
        jobs = [
            (name, steps, seed, overrides, str(run_folder(out, name, label, seed)))
            for label, overrides in configs
            for name, steps in budgets
            for seed in range(args.seeds)
        ]
        skipped = {tuple(item.split(":", 1)) for item in args.skip.split(",") if item}
        jobs = [job for job in jobs if (job[0], Path(job[4]).parent.name) not in skipped]
        todo = [job for job in jobs if finished(Path(job[4])) is None]
        print(f"{len(todo)} of {len(jobs)} runs to train", file=sys.stderr)
        os.environ["OMP_NUM_THREADS"] = "1"
        with mp.get_context("fork").Pool(args.jobs, maxtasksperchild=20) as pool:
            for folder, seconds, error in pool.imap_unordered(work, todo):
                print(f"{folder}: {'FAILED ' + error if error else f'{seconds:.0f} s'}", file=sys.stderr, flush=True)
    names = [name for name, _ in budgets]
    table = collect(out, names, configs, args.seeds)
    weighting_labels = [label for label, _ in configs if label.startswith(WEIGHTINGS_HEAD)]
    architecture_labels = ["hps+ew"] + [label for label, _ in configs[1:] if not label.startswith(WEIGHTINGS_HEAD)]
    print(markdown(table, weighting_labels, "Weightings under hard parameter sharing"))
    print()
    print(markdown(table, architecture_labels, "Architectures (equal weighting unless named)"))
    Path(args.json or out / "seeds.json").write_text(json.dumps({"seeds": args.seeds, "runs": table}, indent=1))
    if args.figure:
        figure(table, weighting_labels + architecture_labels[1:], Path(args.figure))


if __name__ == "__main__":
    main()
