"""The one reader of run directories: config.yaml, run.json, summary.json, metrics.jsonl and affinity.json read into
one typed `RunRecord`. A damaged or missing file leaves its fields unknown and adds a sentence to `problems`; it
never raises, so `runs` lists every run and `compare`, `report` and `sweep` show what can be read."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..checked import TooComplex, finite, number, plain
from ..errors import ConfigError, RunError
from ..eval import RESULT_TYPES, MultiTaskResult, Result, RunSummary, ValidationRecord
from ..eval.multitask import LOWER_IS_BETTER
from ..eval.summary import validation_series
from ..train.checkpoint import read_json
from ..train.metrics import read_metrics
from ..train.run_status import STATUS_FILE, read_status

MARKERS = ("config.yaml", STATUS_FILE, "metrics.jsonl", "summary.json")
AFFINITY_KINDS = ("cosine", "lookahead")
MAX_CONFIG_BYTES = 2**20  # a recipe is a few kilobytes


@dataclass
class Affinity:
    """affinity.json, checked: task names and, per kind of affinity measured, a T x T matrix (NaN where unknown)."""

    tasks: list[str]
    matrices: dict[str, list[list[float]]]
    steps: dict[str, int] = field(default_factory=dict)


@dataclass
class RunRecord:
    """Everything known about one run directory; what could not be read is None or empty, and said in `problems`."""

    path: Path
    name: str
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    config_text: str = field(default="", repr=False)
    recipe: str | None = None
    kind: str | None = None
    algorithm: str | None = None
    dataset: str | None = None
    status: str = "unknown"
    run_info: dict[str, Any] = field(default_factory=dict, repr=False)
    summary: RunSummary = field(default_factory=RunSummary, repr=False)
    validation: ValidationRecord | None = None
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)
    affinity: Affinity | None = None
    wall_seconds: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def test(self) -> list[Result]:
        """The run's test results, one per protocol."""
        return self.summary.test

    @property
    def train(self) -> list[dict[str, Any]]:
        """Training records (those with a loss and a step), in logged order."""
        return [r for r in self.records if "loss" in r and isinstance(r.get("step"), int)]

    @property
    def tasks(self) -> list[str]:
        """Tasks whose training losses are logged per task (multi-task runs with few tasks)."""
        seen: dict[str, None] = {}
        for record in self.train:
            seen.update((k[len("loss_") :], None) for k in record if k.startswith("loss_"))
        return list(seen)

    @property
    def has_tasks(self) -> bool:
        """Whether the run trains several tasks in one model: per-task losses, an affinity or multi-task results."""
        return (
            bool(self.tasks)
            or self.affinity is not None
            or any(isinstance(r, MultiTaskResult) for results in self.summary.results.values() for r in results)
        )

    def validation_curve(self) -> tuple[str | None, list[tuple[int, float]]]:
        """(metric, [(step, value)]) of the run's validation records."""
        return validation_series(self.records, self.validation.metric if self.validation else None)

    def info(self, key: str) -> str | None:
        """A text field of run.json (started, ended, message, host, ...), None when absent or not text."""
        value = self.run_info.get(key)
        return value if isinstance(value, str) else None


def is_run(path: Path) -> bool:
    """A run directory is one that `polyskill train` wrote its config.yaml into."""
    return (Path(path) / "config.yaml").is_file()


def find_runs(root: str | Path) -> list[Path]:
    """`root` itself if it is a run, else every run directory below it (not descending into runs, nor twice into
    one folder, so symbolic links that loop end), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise RunError(f"no directory at {root}")
    if is_run(root):
        return [root]
    found: list[Path] = []
    stack, seen = [root], {root.resolve()}
    while stack:
        folder = stack.pop()
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            continue
        for child in children:
            if is_run(child):
                found.append(child)
                continue
            try:
                real = child.resolve()
            except (OSError, RuntimeError):  # a link that loops on itself
                continue
            if real not in seen:
                seen.add(real)
                stack.append(child)
    return sorted(found)


def short_names(paths: list[Path]) -> list[str]:
    """Short unique names for runs: the directory name, with parent folders added only where names clash."""
    parts = [Path(p).resolve().parts for p in paths]
    depth = [1] * len(paths)
    while True:
        labels = ["/".join(p[-d:]) for p, d in zip(parts, depth, strict=True)]
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


def _read_config(path: Path, problems: list[str]) -> tuple[str, dict[str, Any]]:
    """config.yaml's text (bytes that are not UTF-8 replaced) and the mapping it holds ({} when it holds none)."""
    if not path.is_file():
        return "", {}
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            problems.append(f"config.yaml is not read: it holds more than {MAX_CONFIG_BYTES // 2**20} MiB.")
            return "", {}
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(f"config.yaml could not be read ({exc.strerror or exc}).")
        return "", {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        problems.append("config.yaml holds bytes that are not UTF-8 (shown as \ufffd).")
    try:
        values = plain(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        problems.append(f"config.yaml is not valid YAML ({str(exc).splitlines()[0]}).")
        return text, {}
    except TooComplex as exc:
        problems.append(f"config.yaml is too complex to read: {exc}.")
        return text, {}
    except (ValueError, TypeError, RecursionError) as exc:
        problems.append(f"config.yaml could not be read ({type(exc).__name__}: {str(exc)[:120]}).")
        return text, {}
    if not isinstance(values, dict):
        if values is not None:
            problems.append(f"config.yaml holds a {type(values).__name__}, not a mapping of sections.")
        return text, {}
    return text, values


def _recipe(values: dict[str, Any], problems: list[str]) -> Any:
    """The run's recipe (earlier versions' configs included), or None with a problem when it does not validate."""
    from ..recipes import load_config

    if not values:
        return None
    try:
        return load_config(values)
    except ConfigError as exc:
        problems.append(f"config.yaml does not validate as a recipe ({exc}).")
        return None


def _read_run_info(run: Path, problems: list[str]) -> dict[str, Any]:
    """run.json (with a dead "running" process reported as interrupted), {} when absent or damaged."""
    path = run / STATUS_FILE
    if not path.is_file():
        return {}
    try:
        read_json(path)
    except RunError as exc:
        problems.append(f"{exc}.")
        return {}
    return read_status(run)


def _read_summary(path: Path, problems: list[str]) -> RunSummary:
    """summary.json as a RunSummary; a damaged file is an empty one, and a damaged result is left out."""
    if not path.is_file():
        return RunSummary()
    try:
        values = read_json(path)
    except RunError as exc:
        problems.append(f"{exc}.")
        return RunSummary()
    summary = RunSummary.from_dict(values)
    problems.extend(f"{problem}." for problem in summary.problems)
    for split, results in summary.results.items():
        kept = [r for r in results if _usable(r)]
        if len(kept) < len(results):
            problems.append(
                f"summary.json: {len(results) - len(kept)} {split} result(s) have no headline value and are left out."
            )
        summary.results[split] = kept
    return summary


def _usable(result: Result) -> bool:
    """Whether a result read from summary.json has a headline value."""
    try:
        return number(result.value) is not None
    except (KeyError, TypeError, ValueError, OverflowError):
        return False


def _read_records(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """metrics.jsonl's records (damaged lines skipped), without integers too large to be a float."""
    try:
        records = read_metrics(path)
    except OSError as exc:
        problems.append(f"metrics.jsonl could not be read ({exc.strerror or exc}).")
        return []
    return [
        {k: v for k, v in r.items() if not isinstance(v, int) or number(v) is not None or isinstance(v, bool)}
        for r in records
    ]


def higher_is_better(metric: str) -> bool:
    """Whether higher is better for `metric`, as the result type that measures it declares (the per-task errors of
    multi-task results are lower-is-better; any other metric higher)."""
    if metric in LOWER_IS_BETTER:
        return False
    return next((cls.higher_is_better for cls in RESULT_TYPES.values() if cls.metric == metric), True)


def _validation(declared: ValidationRecord | None, records: list[dict[str, Any]]) -> ValidationRecord | None:
    """`declared` when it holds a best value; else the best of the run's validation records so far (a run that
    stopped before its summary), of the declared metric when there is one, else of whatever metric they hold."""
    if declared is not None and declared.best is not None:
        return declared
    metric, series = validation_series(records, declared.metric if declared else None)
    if not series or metric is None:
        return declared
    higher = declared.higher_is_better if declared and declared.metric == metric else higher_is_better(metric)
    found = ValidationRecord(metric, higher)
    for step, value in series:
        if found.better(value):
            found.best, found.best_step = value, step
    return found


def _matrix(values: Any, n: int) -> list[list[float]] | None:
    if not isinstance(values, list) or len(values) != n:
        return None
    rows = []
    for row in values:
        if not isinstance(row, list) or len(row) != n:
            return None
        numbers = [number(v) for v in row]
        if any(v is None for v in numbers):
            return None
        rows.append([v if v is not None and math.isfinite(v) else math.nan for v in numbers])
    return rows


def _read_affinity(path: Path, problems: list[str]) -> Affinity | None:
    """affinity.json checked: a mapping with `tasks` (names) and T x T numeric matrices; None (with a problem
    when the file is there) otherwise."""
    if not path.is_file():
        return None
    try:
        values = read_json(path)
    except RunError as exc:
        problems.append(f"{exc}.")
        return None
    tasks = values.get("tasks")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        problems.append("affinity.json is damaged: its tasks are not a list of task names.")
        return None
    matrices = {}
    for kind in AFFINITY_KINDS:
        if kind in values:
            matrix = _matrix(values[kind], len(tasks))
            if matrix is None:
                problems.append(
                    f"affinity.json is damaged: its {kind} matrix is not {len(tasks)} x {len(tasks)} "
                    "numbers, one row and column per task."
                )
                return None
            matrices[kind] = matrix
    if not matrices:
        problems.append("affinity.json holds no affinity matrix.")
        return None
    steps = values.get("steps")
    counts = (
        {k: v for k, v in steps.items() if isinstance(v, int) and not isinstance(v, bool)}
        if isinstance(steps, dict)
        else {}
    )
    return Affinity(list(tasks), matrices, counts)


def _text(*candidates: Any) -> str | None:
    """The first candidate that is a non-empty string."""
    return next((c for c in candidates if isinstance(c, str) and c), None)


def _labels(recipe: Any) -> tuple[str | None, str | None, str | None, ValidationRecord | None]:
    """(kind, algorithm, dataset, validation) as the recipe's kind describes them; all None without a recipe."""
    if recipe is None:
        return None, None, None, None
    from ..recipes import kind_of

    kind = kind_of(recipe)
    return kind.name, kind.algorithm_label(recipe), kind.dataset_label(recipe), kind.validation(recipe)


def _state(info: dict[str, Any], summary: RunSummary, run: Path) -> str:
    """run.json's status, else summary.json's, else whether the run has begun writing."""
    written = _text(info.get("status"), summary.status)
    if written:
        return written
    if (run / "last.pt").is_file() or (run / "metrics.jsonl").is_file():
        return "incomplete"
    return "not started"


def _wall_seconds(summary: RunSummary, records: list[dict[str, Any]]) -> float | None:
    if summary.train_seconds is not None:
        return finite(summary.train_seconds)
    times = [t for r in records if (t := finite(r.get("time"))) is not None]
    return times[-1] if times else None


def read_run(path: str | Path, name: str | None = None) -> RunRecord:
    """Read the run directory at `path` (named `name`, default its folder's name); a RunError only when `path` is
    not a run directory at all."""
    run = Path(path)
    if not run.is_dir():
        raise RunError(f"no run directory at {run}")
    if not any((run / marker).is_file() for marker in MARKERS):
        raise RunError(f"{run} is not a run directory (it has none of {', '.join(MARKERS)})")
    problems: list[str] = []
    config_text, values = _read_config(run / "config.yaml", problems)
    recipe = _recipe(values, problems)
    kind, algorithm, dataset, declared = _labels(recipe)
    if recipe is not None:
        from ..recipes import recipe_to_dict

        values = recipe_to_dict(recipe)  # today's defaults filled in, so runs of older versions compare key by key
    info = _read_run_info(run, problems)
    summary = _read_summary(run / "summary.json", problems)
    records = _read_records(run / "metrics.jsonl", problems)
    return RunRecord(
        path=run,
        name=name or run.resolve().name,
        config=values,
        config_text=config_text,
        recipe=_text(info.get("recipe"), summary.recipe, values.get("name")),
        kind=_text(summary.kind, kind, values.get("kind")),
        algorithm=_text(info.get("algorithm"), algorithm),
        dataset=_text(info.get("dataset"), dataset),
        status=_state(info, summary, run),
        run_info=info,
        summary=summary,
        validation=_validation(summary.validation or declared, records),
        records=records,
        affinity=_read_affinity(run / "affinity.json", problems),
        wall_seconds=_wall_seconds(summary, records),
        problems=problems,
    )


def read_runs(paths: list[str | Path]) -> list[RunRecord]:
    """Several run directories, each named by a short unique name."""
    runs = [Path(p) for p in paths]
    return [read_run(p, name) for p, name in zip(runs, short_names(runs), strict=True)]


__all__ = [
    "MARKERS",
    "Affinity",
    "RunRecord",
    "find_runs",
    "higher_is_better",
    "is_run",
    "read_run",
    "read_runs",
    "short_names",
]
