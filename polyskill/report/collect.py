"""Read a run directory into one `RunData`: the report's only contact with the files a run writes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RunError
from ..train.run_status import read_status
from ..train.metrics import read_metrics

MARKERS = ("config.yaml", "run.json", "metrics.jsonl", "summary.json")
VAL_KEYS = ("val_acc", "val_score")


@dataclass
class RunData:
    """Everything a report shows about one run; absent pieces are empty, and `problems` says what could not be read."""

    path: Path
    label: str
    config_text: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    affinity: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def train(self) -> list[dict[str, Any]]:
        """Training records (those with a loss), in logged order."""
        return [r for r in self.records if "loss" in r and "step" in r]

    @property
    def val_key(self) -> str | None:
        """The validation metric this run logs ("val_acc" or "val_score"), or None."""
        return next((k for k in VAL_KEYS if any(k in r for r in self.records)), None)

    @property
    def val(self) -> list[dict[str, Any]]:
        """Validation records, in logged order."""
        key = self.val_key
        return [r for r in self.records if key and key in r and "step" in r]

    @property
    def tasks(self) -> list[str]:
        """Tasks whose training losses are logged per task (multi-task runs with few tasks)."""
        seen: dict[str, None] = {}
        for record in self.train:
            seen.update((k[len("loss_"):], None) for k in record if k.startswith("loss_"))
        return list(seen)

    @property
    def protocols(self) -> list[dict[str, Any]]:
        """Few-shot / meta-learning test results: summary.json's "test" list (empty for multi-task runs)."""
        test = self.summary.get("test")
        return [p for p in test if isinstance(p, dict)] if isinstance(test, list) else []

    @property
    def multitask_test(self) -> dict[str, Any]:
        """A multi-task run's test result (overall, per_task, primary), or an empty mapping."""
        test = self.summary.get("test")
        return test if isinstance(test, dict) else {}

    @property
    def is_multitask(self) -> bool:
        """Whether this is a multi-task run (one model, several task heads) rather than a meta-learning one."""
        from ..recipes.schema import MULTITASK_DATASETS

        data = self.config.get("data") if isinstance(self.config.get("data"), dict) else {}
        by_config = data.get("dataset") in MULTITASK_DATASETS and not data.get("as_tasks")
        return bool(by_config or self.multitask_test or self.tasks or self.affinity or self.val_key == "val_score")

    @property
    def state(self) -> str:
        """How the run stands: run.json's status, else summary.json's, else "unknown"."""
        return str(self.status.get("status") or self.summary.get("status") or "unknown")


def _read_json(path: Path, problems: list[str]) -> dict[str, Any]:
    """A JSON object from `path`, or {} with a note in `problems` when the file is there but unreadable."""
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path.name} could not be read ({exc}).")
        return {}
    if not isinstance(value, dict):
        problems.append(f"{path.name} does not hold a JSON object.")
        return {}
    return value


def _parse_yaml(text: str, problems: list[str]) -> dict[str, Any]:
    """config.yaml as a mapping, or {} with a note in `problems` when it does not parse."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problems.append(f"config.yaml could not be parsed ({str(exc).splitlines()[0]}).")
        return {}
    return value if isinstance(value, dict) else {}


def collect_run(path: str | Path, label: str | None = None) -> RunData:
    """Read the run directory at `path`; raises RunError when it is not one."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"no run directory at {path}")
    if not path.is_dir() or not any((path / name).is_file() for name in MARKERS):
        raise RunError(f"{path} is not a run directory (it has none of {', '.join(MARKERS)})")
    run = RunData(path=path, label=label or path.resolve().name)
    if (path / "config.yaml").is_file():
        run.config_text = (path / "config.yaml").read_text(errors="replace")
        run.config = _parse_yaml(run.config_text, run.problems)
    run.status = read_status(path)
    run.summary = _read_json(path / "summary.json", run.problems)
    run.records = read_metrics(path / "metrics.jsonl")
    run.affinity = _read_json(path / "affinity.json", run.problems)
    return run


def run_labels(paths: list[Path]) -> list[str]:
    """Short unique names for runs: the directory name, with parent folders added only where names clash."""
    parts = [Path(p).resolve().parts for p in paths]
    depth = [1] * len(paths)
    while True:
        labels = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        clashing = [i for i, name in enumerate(labels) if labels.count(name) > 1 and depth[i] < len(parts[i])]
        if not clashing:
            break
        for i in clashing:
            depth[i] += 1
    seen: dict[str, int] = {}
    unique = []
    for name in labels:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


def collect_runs(paths: list[str | Path]) -> list[RunData]:
    """Read several run directories, each named by a short unique label."""
    paths = [Path(p) for p in paths]
    return [collect_run(p, label) for p, label in zip(paths, run_labels(paths))]
