"""Finding run directories and reading each into one record: what it is, how it ended, what it scored."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import PolyskillError, RunError
from ..recipes import recipe_from_dict, recipe_to_dict
from ..recipes.schema import MULTITASK_DATASETS
from ..train.checkpoint import read_json
from ..train.metrics import read_metrics
from ..train.run_status import read_status


@dataclass
class RunRecord:
    """One run directory as `polyskill runs` and `polyskill compare` see it."""

    path: Path
    name: str
    recipe: str
    algorithm: str
    dataset: str
    status: str
    best_val: float | None
    val_metric: str | None
    test: list[dict[str, Any]] | dict[str, Any] | None
    wall_seconds: float | None
    started: str | None
    config: dict[str, Any] = field(repr=False)
    summary: dict[str, Any] = field(repr=False)


def is_run(path: Path) -> bool:
    """A run directory is one that `polyskill train` wrote its config.yaml into."""
    return (Path(path) / "config.yaml").is_file()


def find_runs(root: str | Path) -> list[Path]:
    """`root` itself if it is a run, else every run directory below it (not descending into runs), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise RunError(f"no directory at {root}")
    if is_run(root):
        return [root]
    found, stack = [], [root]
    while stack:
        folder = stack.pop()
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            continue
        for child in children:
            (found if is_run(child) else stack).append(child)
    return sorted(found)


def _read_config(path: Path) -> dict[str, Any]:
    """The run's recipe with today's defaults filled in (so runs of older versions compare key by key), or
    as written when it no longer validates."""
    try:
        values = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(values, dict):
        return {}
    try:
        return recipe_to_dict(recipe_from_dict(values))
    except PolyskillError:
        return values


def _algorithm(config: dict[str, Any]) -> str:
    data, mtl = config.get("data") or {}, config.get("mtl") or {}
    if data.get("dataset") in MULTITASK_DATASETS and not data.get("as_tasks"):
        return f"{mtl.get('architecture', '?')}+{mtl.get('weighting', '?')}"
    return str((config.get("algo") or {}).get("name", "?"))


def _wall_seconds(run: Path, summary: dict[str, Any]) -> float | None:
    if isinstance(summary.get("train_seconds"), (int, float)):
        return float(summary["train_seconds"])
    times = [r["time"] for r in read_metrics(run / "metrics.jsonl") if isinstance(r.get("time"), (int, float))]
    return float(times[-1]) if times else None


def read_run(run: str | Path, relative_to: str | Path | None = None) -> RunRecord:
    """Read `run` (config.yaml, run.json, summary.json, metrics.jsonl) into a RunRecord; a damaged or
    missing file makes its fields unknown, it never fails the listing."""
    run = Path(run)
    if not run.is_dir():
        raise RunError(f"no run directory at {run}")
    if not is_run(run):
        raise RunError(f"{run} is not a run directory: it has no config.yaml")
    config = _read_config(run / "config.yaml")
    try:
        summary = read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
    except RunError:
        summary = {}
    status = read_status(run)
    state = status.get("status") or summary.get("status") or (
        "incomplete" if (run / "last.pt").is_file() or (run / "metrics.jsonl").is_file() else "not started")
    metric = next((k for k in ("best_val_acc", "best_val_score") if k in summary), None)
    best = summary.get(metric) if metric else None
    if best is None:  # a run that stopped before its summary (killed, pruned): its validations so far
        records = read_metrics(run / "metrics.jsonl")
        for key in ("val_acc", "val_score"):
            values = [r[key] for r in records if isinstance(r.get(key), (int, float))]
            if values:
                metric, best = f"best_{key}", max(values)
                break
    try:
        name = str(run.relative_to(relative_to)) if relative_to is not None else run.name
    except ValueError:
        name = str(run)
    return RunRecord(path=run, name=name if name != "." else run.name,
                     recipe=str(status.get("recipe") or config.get("name", "?")),
                     algorithm=str(status.get("algorithm") or _algorithm(config)),
                     dataset=str(status.get("dataset") or (config.get("data") or {}).get("dataset", "?")),
                     status=state, best_val=best,
                     val_metric=metric[len("best_"):] if metric else None, test=summary.get("test"),
                     wall_seconds=_wall_seconds(run, summary), started=status.get("started"), config=config,
                     summary=summary)


def format_best(record: RunRecord) -> str:
    """The best validation figure: an accuracy in percent, a score as is, '-' when there is none."""
    if record.best_val is None:
        return "-"
    return f"{100 * record.best_val:.2f}%" if record.val_metric == "val_acc" else f"{record.best_val:.4f}"


def protocol_label(result: dict[str, Any]) -> str:
    """A few-shot test protocol in short: 5w1s, 1s regression, with '@10' for 10 adaptation steps."""
    steps = f"@{result['steps']}" if result.get("steps") is not None else ""
    if "accuracy" in result:
        return f"{result.get('way')}w{result.get('shot')}s{steps}"
    if "mse" in result:
        return f"{result.get('shot')}-shot{steps}"
    return f"{result.get('tasks', '?')} tasks{steps}"


def format_result(result: dict[str, Any]) -> str:
    """One test result's figure with its 95% interval where it has one."""
    if "accuracy" in result:
        return f"{100 * result['accuracy']:.2f}±{100 * result.get('ci95', 0):.2f}%"
    if "mse" in result:
        return f"MSE {result['mse']:.4f}±{result.get('ci95', 0):.4f}"
    if "explained_variance" in result:
        return f"EV {100 * result['explained_variance']:.2f}%"
    return "?"


def format_test(record: RunRecord) -> str:
    """Every test result of the run in one short cell."""
    test = record.test
    if isinstance(test, list) and test:
        return ", ".join(f"{protocol_label(r)} {format_result(r)}" for r in test if isinstance(r, dict))
    if isinstance(test, dict) and isinstance(test.get("overall"), dict):
        cell = ", ".join(f"{k} {v:.4f}" for k, v in test["overall"].items() if isinstance(v, (int, float)))
        delta = record.summary.get("test_delta_m")
        return cell + (f", delta-m {delta['value']:+.2f}%" if isinstance(delta, dict) else "")
    return "-"


def format_seconds(seconds: float | None) -> str:
    """12s, 6m05s, 1h02m."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
