"""TensorBoard and MLflow loggers: a real CLI run read back with each tool's own reader, resume, missing packages."""

from __future__ import annotations

import builtins
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")
pytestmark = pytest.mark.filterwarnings("ignore:.*noload.*:DeprecationWarning")  # MLflow's SQLite store, on read

from conftest import polyskill_cli, polyskill_in_process, tiny_recipe  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from polyskill.errors import ConfigError  # noqa: E402
from polyskill.track import open_trackers, scalars  # noqa: E402


def polyskill(*args: str | Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    return polyskill_cli(*args, env={**env, "DO_NOT_TRACK": "true"})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trackers")
    recipe = tiny_recipe(folder, loggers=["tensorboard", "mlflow"])
    result = polyskill("train", recipe, "--out", folder / "run", "--quiet", "--no-eval")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower() and "INFO" not in result.stderr, result.stderr
    return folder / "run"


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def expected_curves(run: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl as tag -> [(step, value)], the curves both trackers must show."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for record in records(run):
        for tag, value in scalars(record).items():
            curves.setdefault(tag, []).append((record["step"], value))
    return curves


def tensorboard_curves(run: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def mlflow_client(run: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{(run / 'mlflow.db').resolve().as_posix()}")


def mlflow_curves(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in client.get_run(run_id).data.metrics
    }


def assert_same_curves(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for tag, points in want.items():
        assert [step for step, _ in got[tag]] == [step for step, _ in points], tag
        assert [value for _, value in got[tag]] == pytest.approx([value for _, value in points], rel=1e-6), tag


def test_tags_group_training_and_validation_keys():
    record = {"step": 500, "loss": 1.2, "loss_a": 0.5, "weight_a": 1.0, "lr": 1e-3, "val_acc": 0.9, "time": 40.1}
    assert scalars(record) == {
        "train/loss": 1.2,
        "train/loss_a": 0.5,
        "train/weight_a": 1.0,
        "train/lr": 1e-3,
        "val/acc": 0.9,
    }


def test_tensorboard_shows_the_metrics_and_the_config(tiny_run):
    want = expected_curves(tiny_run)
    assert {"train/loss", "train/acc", "train/lr"} <= set(want) and any(tag.startswith("val/") for tag in want)
    assert_same_curves(tensorboard_curves(tiny_run), want)
    events = EventAccumulator(str(tiny_run / "tensorboard"))
    events.Reload()
    [config] = events.Tensors("config/text_summary")
    assert config.step == 0 and b"lr: 0.001" in config.tensor_proto.string_val[0]


def test_mlflow_holds_params_metrics_and_a_finished_run(tiny_run):
    client = mlflow_client(tiny_run)
    run = client.get_run((tiny_run / "mlflow_run_id").read_text().strip())
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert client.get_experiment(run.info.experiment_id).name == "tiny"
    params = run.data.params
    assert params["train.lr"] == "0.001" and params["algo.name"] == "protonet" and params["train.steps"] == "6"
    assert params["eval.ways"] == "[5]" and params["model.init"] == "null"
    assert_same_curves(mlflow_curves(client, run.info.run_id), expected_curves(tiny_run))


def test_a_resumed_run_continues_the_same_curves(tiny_run, tmp_path, monkeypatch):
    """The resume runs in this process (the first run, in its own, shows the command prints no tracker noise)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    more = polyskill_in_process(
        "train",
        tiny_run.parent / "tiny.yaml",
        "--out",
        run,
        "--resume",
        "--quiet",
        "--no-eval",
        "--set",
        "train.steps=8",
    )
    assert more.returncode == 0, more.stderr
    want = expected_curves(run)
    assert want["train/loss"][-1][0] == 8
    assert_same_curves(tensorboard_curves(run), want)
    client = mlflow_client(run)
    assert len(client.search_runs([r.experiment_id for r in client.search_experiments()])) == 1
    run_id = (run / "mlflow_run_id").read_text().strip()
    assert client.get_run(run_id).info.status == "FINISHED"
    assert_same_curves(mlflow_curves(client, run_id), want)


def test_redone_steps_after_a_crash_are_not_shown_twice(tmp_path, monkeypatch):
    """A crash after a checkpoint leaves records that the resumed run writes again (identically, as resuming is
    exact): each step shows once."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = {"name": "crash", "train": {"lr": 0.01}}
    first = [{"step": s, "loss": 10.0 - s, "time": 0.1 * s} for s in (1, 2, 3, 4)]
    again = [{"step": s, "loss": 10.0 - s, "time": 0.1 * s} for s in (3, 4, 5, 6)]
    for batch in (first, again):
        sinks = open_trackers(["tensorboard", "mlflow"], tmp_path, config)
        for record in batch:
            for sink in sinks:
                sink.write(record)
        for sink in sinks:
            sink.close()
    want = {"train/loss": [(s, 10.0 - s) for s in range(1, 7)]}
    assert_same_curves(tensorboard_curves(tmp_path), want)
    client = mlflow_client(tmp_path)
    assert_same_curves(mlflow_curves(client, (tmp_path / "mlflow_run_id").read_text().strip()), want)


@pytest.mark.parametrize("error, status", [(RuntimeError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED")])
def test_a_run_stopped_by_an_exception_says_how(error, status, tmp_path, monkeypatch):
    """The trainer closes its sinks in a `finally`: the MLflow run ends FAILED or KILLED, not FINISHED."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    [sink] = open_trackers(["mlflow"], tmp_path, {"name": "broken"})
    sink.write({"step": 1, "loss": 1.0})

    def train() -> None:
        try:
            raise error
        finally:
            sink.close()

    with pytest.raises(type(error)):
        train()
    run = mlflow_client(tmp_path).get_run((tmp_path / "mlflow_run_id").read_text().strip())
    assert run.info.status == status


def test_mlflow_tracking_uri_is_honoured(tmp_path, monkeypatch):
    shared = f"sqlite:///{(tmp_path / 'shared.db').as_posix()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared)
    [sink] = open_trackers(["mlflow"], tmp_path / "run", {"name": "shared"})
    sink.write({"step": 5, "val_acc": 0.5})
    sink.close()
    assert not (tmp_path / "run" / "mlflow.db").exists()
    client = MlflowClient(tracking_uri=shared)
    history = client.get_metric_history((tmp_path / "run" / "mlflow_run_id").read_text().strip(), "val/acc")
    assert [(m.step, m.value) for m in history] == [(5, 0.5)]


@pytest.mark.parametrize("name, package", [("tensorboard", "tensorboard"), ("mlflow", "mlflow")])
def test_a_missing_package_names_the_extra(name, package, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def refuse(module, *args, **kwargs):
        if module.split(".")[0] == package:
            raise ModuleNotFoundError(f"No module named {package!r}", name=package)
        return real_import(module, *args, **kwargs)

    for loaded in [m for m in sys.modules if m.startswith(("polyskill.track.", "torch.utils.tensorboard"))]:
        monkeypatch.delitem(sys.modules, loaded)
    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(ConfigError) as error:
        open_trackers([name], tmp_path, {"name": "x"})
    message = str(error.value)
    assert message.startswith(f"train.loggers: {name} needs the {package} package")
    assert f"pip install 'polyskill[{name}]'" in message and "\n" not in message
    assert not any(tmp_path.iterdir())


def test_mlflow_local_store_without_sqlalchemy_says_what_to_install(tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "alembic" else real_find_spec(name, *a)
    )
    with pytest.raises(ConfigError, match=r"needs alembic.*pip install alembic.*MLFLOW_TRACKING_URI"):
        open_trackers(["mlflow"], tmp_path, {"name": "x"})


def test_no_loggers_opens_nothing(tmp_path):
    assert open_trackers([], tmp_path, {"name": "x"}) == []
    assert not any(tmp_path.iterdir())


def test_records_a_killed_process_never_sent_reach_mlflow_on_resume(tmp_path, monkeypatch):
    """MLflow gets records in batches; a SIGKILL loses the unsent ones, so the resumed run sends them from
    metrics.jsonl (the source of truth) before going on."""
    import atexit

    from polyskill.track import mlflow_logger
    from polyskill.train.metrics import MetricsLog

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(mlflow_logger, "FLUSH_SECONDS", 3600.0)
    log = MetricsLog(tmp_path / "metrics.jsonl")
    [killed] = open_trackers(["mlflow"], tmp_path, {"name": "killed"})
    for step in (1, 2, 3, 4):
        log.write({"step": step, "loss": 10.0 - step})
        killed.write({"step": step, "loss": 10.0 - step})
    log.close()
    atexit.unregister(killed._abandon)  # the process dies here: nothing is sent, nothing is closed
    [resumed] = open_trackers(["mlflow"], tmp_path, {"name": "killed"})
    for step in (3, 4, 5, 6):  # resumed from a checkpoint at step 2: steps 3 and 4 are redone
        resumed.write({"step": step, "loss": 10.0 - step})
    resumed.close()
    client = mlflow_client(tmp_path)
    want = {"train/loss": [(s, 10.0 - s) for s in range(1, 7)]}
    assert_same_curves(mlflow_curves(client, (tmp_path / "mlflow_run_id").read_text().strip()), want)


def test_a_damaged_metrics_log_does_not_stop_the_resumed_mlflow_run(tmp_path, monkeypatch):
    """The resumed run's backfill reads metrics.jsonl as it is: a line of bytes that are not UTF-8 and a record
    without a step are skipped, the good records still reach MLflow, and the training goes on."""
    import atexit

    from polyskill.track import mlflow_logger

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(mlflow_logger, "FLUSH_SECONDS", 3600.0)
    [killed] = open_trackers(["mlflow"], tmp_path, {"name": "damaged"})
    atexit.unregister(killed._abandon)  # killed before sending anything
    (tmp_path / "metrics.jsonl").write_bytes(
        b'{"step": 1, "loss": 9.0}\n{"step": 2, "loss": "\xff"}\n{"loss": 7.5}\n{"step": true, "loss": 1.0}\n'
        b'{"step": 3, "loss": 7.0}\n'
    )
    [resumed] = open_trackers(["mlflow"], tmp_path, {"name": "damaged"})
    resumed.write({"step": 4, "loss": 6.0})
    resumed.close()
    client = mlflow_client(tmp_path)
    want = {"train/loss": [(1, 9.0), (3, 7.0), (4, 6.0)]}
    assert_same_curves(mlflow_curves(client, (tmp_path / "mlflow_run_id").read_text().strip()), want)
