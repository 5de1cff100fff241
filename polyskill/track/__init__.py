"""Optional experiment trackers (TensorBoard, MLflow) fed the same records as metrics.jsonl.

A tracker is a `RecordSink` (polyskill.records); the trainer writes to any sink it is given and never imports this
package, and this package never imports the trainer: the runner (recipes) connects the two."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..records import RecordSink

#: logger name -> (the package it needs, the module holding its sink, the sink class)
TRACKERS = {
    "tensorboard": ("tensorboard", "tensorboard", "TensorBoardSink"),
    "mlflow": ("mlflow", "mlflow_logger", "MlflowSink"),
}


def open_trackers(names: list[str], out: Path, config: dict[str, Any]) -> list[RecordSink]:
    """One sink per logger name; metrics.jsonl stays the run's source of truth."""
    sinks: list[RecordSink] = []
    try:
        for name in dict.fromkeys(names):
            sinks.append(_sink_class(name)(Path(out), config))  # noqa: PERF401  (one at a time: close those opened)
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def _sink_class(name: str) -> type:
    """The sink class for `name`, imported only now, so runs without trackers never load their packages."""
    if name not in TRACKERS:
        raise ConfigError(f"train.loggers: unknown logger {name!r}; known: {', '.join(TRACKERS)}")
    package, module, cls = TRACKERS[name]
    try:
        return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    except ImportError as exc:
        raise ConfigError(
            f"train.loggers: {name} needs the {package} package: pip install 'polyskill[{name}]' ({exc})"
        ) from None


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """A metrics record as tracker scalars: `val_*` under `val/`, the rest under `train/`; step and time left out."""
    tags = {}
    for key, value in record.items():
        if key in ("step", "time") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        tags[f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}"] = float(value)
    return tags


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config sections as dotted keys (`train.lr`), the form trackers show as hyperparameters."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
