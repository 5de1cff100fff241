"""An MLflow run per run directory: the flattened config as params, every record's scalars as metrics."""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..errors import ConfigError
from ..records import read_records
from . import flatten, scalars

#: the limits every MLflow backend accepts (older servers cap param values at 500 characters)
PARAM_VALUE_LENGTH = 500
KEY_LENGTH = 250
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
#: records are sent at most this often (each send is a database transaction: ~20 ms on a local SQLite store)
FLUSH_SECONDS = 5.0
RUN_ID_FILE = "mlflow_run_id"


def tracking_uri(out: Path) -> str:
    """MLFLOW_TRACKING_URI when set, else a SQLite store in the run directory (MLflow 3 refuses ./mlruns)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    missing = [name for name in ("sqlalchemy", "alembic") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"train.loggers: mlflow's local store {out / 'mlflow.db'} needs {' and '.join(missing)} "
            f"(mlflow-skinny leaves them out): pip install {' '.join(missing)}, "
            f"or set MLFLOW_TRACKING_URI to a tracking server"
        )
    return "sqlite:///" + (Path(out) / "mlflow.db").resolve().as_posix()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep MLflow's one-off store set-up chatter (table creation, deprecations) off the user's terminal."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _key(name: str) -> str:
    """`name` with the characters MLflow refuses in param and metric keys replaced, within its length limit."""
    return re.sub(r"[^\w.\- /]", "_", name)[:KEY_LENGTH]


def _param_value(value: Any) -> str:
    return (value if isinstance(value, str) else json.dumps(value))[:PARAM_VALUE_LENGTH]


def _is_step(value: Any) -> bool:
    """Whether a record's `step` is a step number (a damaged metrics.jsonl may hold records without one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _end_status() -> str:
    """FINISHED, or how the exception now unwinding the trainer (close runs in its `finally`) ended the run."""
    error = sys.exc_info()[1]
    if error is None:
        return "FINISHED"
    return "KILLED" if isinstance(error, KeyboardInterrupt) or type(error).__name__ == "TrialPruned" else "FAILED"


class MlflowSink:
    """Logs a run to MLflow: experiment = recipe name, run = run directory name; a resumed run directory
    continues the MLflow run whose id it keeps in OUT/mlflow_run_id, so one run shows one curve."""

    def __init__(self, out: Path, config: dict[str, Any]) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.uri = tracking_uri(self.out)
        self.logged_upto = -1
        self.failed = False
        self.pending: list[Metric] = []
        self.last_flush = time.monotonic()
        with _quiet():
            self.client = MlflowClient(tracking_uri=self.uri)
            self.run_id: str | None = self._start(config)
        atexit.register(self._abandon)

    def _start(self, config: dict[str, Any]) -> str:
        """Continue the run directory's MLflow run, else create one; log the params it does not have yet."""
        run = self._previous_run()
        if run is None:
            run = self.client.create_run(
                self._experiment(str(config.get("name") or "polyskill")), run_name=self.out.resolve().name
            )
            (self.out / RUN_ID_FILE).write_text(run.info.run_id + "\n")
        else:
            self.client.update_run(run.info.run_id, status="RUNNING")
            self.logged_upto = max(
                (m.step for key in run.data.metrics for m in self.client.get_metric_history(run.info.run_id, key)),
                default=-1,
            )
            self._backfill(run.info.run_id)
        have = run.data.params
        params = [
            Param(key, _param_value(value))
            for key, value in {_key(k): v for k, v in flatten(config).items()}.items()
            if key not in have
        ]
        for start in range(0, len(params), PARAMS_PER_BATCH):
            self.client.log_batch(run.info.run_id, params=params[start : start + PARAMS_PER_BATCH])
        return run.info.run_id

    def _backfill(self, run_id: str) -> None:
        """Send what metrics.jsonl holds beyond the MLflow run's last step: records a killed process queued but
        never sent (the resumed run does not redo the steps before its checkpoint)."""
        self.run_id = run_id
        records = [r for r in read_records(self.out / "metrics.jsonl") if _is_step(r.get("step"))]
        for record in records:
            self.write(record)
        self.flush()
        self.logged_upto = max([self.logged_upto, *(int(r["step"]) for r in records)])

    def _previous_run(self) -> Run | None:
        """The active MLflow run recorded in OUT/mlflow_run_id, if this tracking store has it."""
        path = self.out / RUN_ID_FILE
        if not path.is_file():
            return None
        try:
            run = self.client.get_run(path.read_text().strip())
        except MlflowException:
            return None
        return run if run.info.lifecycle_stage == "active" else None

    def _experiment(self, name: str) -> str:
        """The id of experiment `name`, created (artifacts kept in the run directory for a local store) or restored."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            local = self.uri.startswith("sqlite:///") and "MLFLOW_TRACKING_URI" not in os.environ
            return self.client.create_experiment(
                name, artifact_location=(self.out / "mlartifacts").resolve().as_uri() if local else None
            )
        if experiment.lifecycle_stage == "deleted":
            self.client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    def write(self, record: dict[str, Any]) -> None:
        """Queue the record's scalars at its step, sending the queue every FLUSH_SECONDS; steps the run already
        holds (redone after a resume) are skipped."""
        step = int(record["step"])
        if self.run_id is None or self.failed or step <= self.logged_upto:
            return
        stamp = int(time.time() * 1000)
        self.pending += [Metric(_key(tag), value, stamp, step) for tag, value in scalars(record).items()]
        if time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Send the queued metrics. A tracking failure warns once and stops MLflow logging, never the training."""
        pending, self.pending, self.last_flush = self.pending, [], time.monotonic()
        if self.run_id is None or self.failed or not pending:
            return
        try:
            for start in range(0, len(pending), METRICS_PER_BATCH):
                self.client.log_batch(self.run_id, metrics=pending[start : start + METRICS_PER_BATCH])
        except Exception as exc:
            self.failed = True
            warnings.warn(
                f"MLflow logging stopped ({type(exc).__name__}: {exc}); metrics.jsonl still has every record",
                RuntimeWarning,
                stacklevel=2,
            )

    def close(self) -> None:
        """End the MLflow run: FINISHED, or FAILED/KILLED when the trainer is unwinding an exception."""
        self._end(_end_status())

    def _abandon(self) -> None:
        """At interpreter exit, mark a run that was never closed (training failed before it began) FAILED."""
        self._end("FAILED")

    def _end(self, status: str) -> None:
        if self.run_id is None:
            return
        self.flush()
        run_id, self.run_id = self.run_id, None
        atexit.unregister(self._abandon)
        try:
            self.client.set_terminated(run_id, status)
        except Exception as exc:
            warnings.warn(
                f"could not end MLflow run {run_id} ({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=2
            )
