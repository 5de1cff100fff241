"""A multi-task run from a recipe: train into a run directory, evaluate per task, delta-m against a baseline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ..data.mtl_batches import MultiTaskBatches
from ..data.multitask import MultiTaskData
from ..distributed import SINGLE, DistContext, rank_seed
from ..errors import ConfigError, RunError
from ..eval.multitask import MultiTaskResult, delta_m, evaluate_multitask
from ..train.checkpoint import read_json, write_json
from ..train.episodic import RecordSink
from ..train.multitask import MultiTaskTrainer
from .mtl_build import learner, mtl_data
from .run import fit_into, load_weights
from .schema import Recipe

Echo = Callable[[str], None]


def rank_batches(recipe: Recipe, data: MultiTaskData, dist: DistContext = SINGLE) -> MultiTaskBatches:
    """Rank `dist.rank`'s training batches: its share of every global batch (`mtl.batch_size` examples, or
    `mtl.task_batch` of every task for partitioned data, split evenly over the ranks), from its own seeded stream
    (rank 0 keeps `train.seed`, so one process draws what it always drew)."""
    spec = recipe.mtl
    name = "task_batch" if data.partitioned else "batch_size"
    size = getattr(spec, name)
    if size % dist.world:
        raise ConfigError(f"mtl.{name} ({size}) is the global batch and must split evenly over {dist.world} "
                          f"processes")
    local = {"batch_size": spec.batch_size, "task_batch": spec.task_batch, name: size // dist.world}
    try:
        return MultiTaskBatches(data, local["batch_size"], local["task_batch"],
                                seed=rank_seed(recipe.train.seed, dist.rank))
    except ValueError as exc:
        raise ConfigError(f"mtl: {exc}") from None


def train_mtl_run(recipe: Recipe, out: Path, *, resume: bool, root: str | None, progress: bool,
                  evaluate: bool, echo: Echo, sinks: list[RecordSink] | None = None,
                  dist: DistContext = SINGLE) -> dict[str, Any]:
    """Train a multi-task recipe into `out` (already checked by the caller) and evaluate it on the test split;
    as rank `dist.rank` of several processes, train beside the others and leave the writing to rank 0."""
    train = mtl_data(recipe, "train", root)
    val = mtl_data(recipe, "val", root) if recipe.data.val is not None else None
    model = learner(recipe, train)
    batches = rank_batches(recipe, train, dist)
    _, summary = fit_into(out, recipe, lambda sinks: MultiTaskTrainer(model, batches, recipe.train, out=out, val=val,
                                                                      progress=progress, sinks=sinks, dist=dist),
                          resume, echo, sinks, dist=dist)
    if not dist.main:
        return summary
    report = model.affinity.report(model.tasks)
    if any(report["steps"].values()):
        write_json(out / "affinity.json", report)
    write_json(out / "summary.json", summary)
    if evaluate:
        summary = evaluate_mtl_run(out, recipe, out / "best.pt" if (out / "best.pt").is_file() else out / "last.pt",
                                   root=root, echo=echo)
    return summary


def evaluate_mtl_run(run: Path, recipe: Recipe, weights: Path, split: str = "test", root: str | None = None,
                     baseline: str | os.PathLike | None = None, echo: Echo = print) -> dict[str, Any]:
    """Per-task metrics of a trained multi-task run on `split`, and delta-m against `baseline` (a run
    directory, default the recipe's mtl.baseline) when there is one; stored in summary.json."""
    data = mtl_data(recipe, split, root)
    model = learner(recipe, data)
    load_weights(model, weights, run)
    result = evaluate_multitask(model.model, data, split)
    summary = read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
    summary[split] = result.to_dict() | {"weights": weights.name}
    echo(f"{split}: {result}")
    if len(result.per_task) <= 16:
        for task, metrics in result.per_task.items():
            echo(f"  {task}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "n"))
    if baseline is None and recipe.mtl.baseline and not (Path(recipe.mtl.baseline) / "summary.json").is_file():
        echo(f"{split}: no delta-m: the baseline run {recipe.mtl.baseline} is not there yet (train it, then "
             f"`polyskill eval {run}`)")
    elif baseline or recipe.mtl.baseline:
        baseline = baseline or recipe.mtl.baseline
        value = delta_m(result.to_dict(), baseline_result(baseline, split))
        summary[f"{split}_delta_m"] = {"value": value, "baseline": str(baseline)}
        echo(f"{split}: delta-m {value:+.2f}% against {baseline}")
    write_json(run / "summary.json", summary)
    return summary


def baseline_result(baseline: str | os.PathLike, split: str) -> dict[str, Any]:
    """The per-task results a baseline run stored for `split`."""
    path = Path(baseline) / "summary.json"
    if not path.is_file():
        raise RunError(f"baseline {baseline} has no summary.json: train and evaluate it first")
    result = read_json(path).get(split)
    if not isinstance(result, dict) or "per_task" not in result:
        raise RunError(f"baseline {baseline} has no multi-task {split} results: run `polyskill eval {baseline}`")
    return result


__all__ = ["MultiTaskResult", "baseline_result", "evaluate_mtl_run", "rank_batches", "train_mtl_run"]
