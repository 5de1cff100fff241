"""Runs people can trust: SIGKILL and resume, failed writes, divergence, run status, `runs` and `compare`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_recipe

from polyskill.cli import main
from polyskill.rundir import format_seconds, read_run
from polyskill.train import load_checkpoint, read_metrics
from polyskill.train.run_status import read_status

pytestmark = pytest.mark.heavy  # see conftest: handed to a worker first


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "polyskill.cli", *map(str, args)]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _recipe(folder: Path, steps: int) -> Path:
    """The tiny recipe at `steps` steps, validating and checkpointing every 20, logging every 7 (not a divisor)."""
    return tiny_recipe(folder, f"tiny{steps}", steps=steps, val_every=20, log_every=7, lr_step=150)


def _without_time(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def _last_step(run: Path) -> int:
    return max((r["step"] for r in read_metrics(run / "metrics.jsonl")), default=0)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """An uninterrupted 300-step run: the reference a killed and resumed run must reproduce."""
    folder = tmp_path_factory.mktemp("straight")
    run = folder / "run"
    assert main(["train", str(_recipe(folder, 300)), "--out", str(run), "--quiet", "--no-eval"]) == 0
    return run


def _kill_mid_run_and_resume(train_args: list, run: Path, steps: int, kill_after: int) -> int:
    """Start `polyskill train ARGS --out RUN`, SIGKILL it once it has logged step `kill_after`, resume it with
    `polyskill train --resume RUN`; the step it resumed from."""
    child = subprocess.Popen(
        _cli("train", *train_args, "--out", run, "--quiet", "--no-eval"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    deadline = time.monotonic() + 300
    while _last_step(run) < kill_after and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = load_checkpoint(run / "last.pt")["step"]
    assert 0 < killed_at < steps
    assert read_status(run)["status"] == "interrupted"
    resumed = subprocess.run(
        _cli("train", "--resume", run, "--quiet", "--no-eval"), capture_output=True, text=True, env=ENV, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} at step {killed_at}" in resumed.stdout
    return killed_at


def _assert_same_run(straight: Path, run: Path, steps: int) -> None:
    """Same final and best parameters, the same metrics (but wall time), the same best validation."""
    for name in ("last.pt", "best.pt"):
        a, b = load_checkpoint(straight / name), load_checkpoint(run / name)
        assert a["step"] == b["step"] and (name == "best.pt" or a["step"] == steps)
        assert a["model"].keys() == b["model"].keys()
        for key in a["model"]:
            assert torch.equal(a["model"][key], b["model"][key]), (name, key)
    assert _without_time(read_metrics(straight / "metrics.jsonl")) == _without_time(read_metrics(run / "metrics.jsonl"))
    summaries = [json.loads((r / "summary.json").read_text()) for r in (straight, run)]
    assert summaries[0]["validation"] == summaries[1]["validation"] and summaries[0]["validation"]["best"] is not None
    status = read_status(run)
    assert status["status"] == "finished" and status["resumed"] == 1


def test_a_run_killed_with_sigkill_resumes_to_the_same_parameters_and_metrics(straight, tmp_path):
    run = tmp_path / "run"
    _kill_mid_run_and_resume([_recipe(tmp_path, 300)], run, 300, kill_after=90)
    _assert_same_run(straight, run, 300)


def test_a_multitask_run_with_a_stateful_weighting_survives_sigkill_too(tmp_path):
    """DWA keeps a window of past losses: it must come back exactly from the checkpoint as well."""
    args = [
        "mtl-synthetic-affinity",
        "--set",
        "mtl.weighting=dwa",
        "--set",
        "train.steps=300",
        "--set",
        "train.val_every=50",
        "--set",
        "train.log_every=7",
    ]
    assert main(["train", *args, "--out", str(tmp_path / "straight"), "--quiet", "--no-eval"]) == 0
    _kill_mid_run_and_resume(args, tmp_path / "run", 300, kill_after=100)
    _assert_same_run(tmp_path / "straight", tmp_path / "run", 300)


def test_a_run_that_is_training_right_now_is_not_resumed_by_a_second_process(tmp_path):
    run = tmp_path / "run"
    child = subprocess.Popen(
        _cli("train", _recipe(tmp_path, 5000), "--out", run, "--quiet", "--no-eval"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        deadline = time.monotonic() + 300
        while not (run / "last.pt").is_file() and time.monotonic() < deadline:
            time.sleep(0.02)
        second = subprocess.run(
            _cli("train", "--resume", run, "--quiet"), capture_output=True, text=True, env=ENV, timeout=300
        )
        assert second.returncode == 2 and "is being trained by another process right now" in second.stderr
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_runs_lists_and_compare_sets_side_by_side(straight, tmp_path, capsys):
    other = tmp_path / "runs" / "lr"
    assert main(["train", str(_recipe(tmp_path, 30)), "--out", str(other), "--quiet", "--set", "train.lr=0.01"]) == 0
    (tmp_path / "runs" / "copy").symlink_to(straight, target_is_directory=True)
    capsys.readouterr()
    assert main(["runs", str(tmp_path / "runs")]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == [
        "run",
        "recipe",
        "algorithm",
        "data",
        "status",
        "best",
        "val",
        "test",
        "(95%",
        "CI)",
        "wall",
        "time",
    ]
    rows = {line.split()[0]: line for line in listing[2:]}
    assert set(rows) == {"copy", "lr"}
    record = read_run(other)
    test = json.loads((other / "summary.json").read_text())["test"][0]
    assert f"5w1s {100 * test['accuracy']:.2f}±{100 * test['ci95']:.2f}%" in rows["lr"]
    assert "protonet" in rows["lr"] and "omniglot" in rows["lr"] and "finished" in rows["lr"]
    assert record.validation.metric == "accuracy" and record.validation.higher_is_better
    assert f"{100 * record.validation.best:.2f}%" in rows["lr"] and format_seconds(record.wall_seconds) in rows["lr"]
    assert "-" in rows["copy"].split()  # evaluated never: no test result

    assert main(["compare", str(straight), str(other)]) == 0
    table = capsys.readouterr().out.splitlines()
    by_key = {line.split()[0]: line.split()[1:] for line in table[2:] if line.strip()}
    assert by_key["train.lr"] == ["0.001", "0.01"] and by_key["train.steps"] == ["300", "30"]
    assert "data.dataset" not in by_key  # only what differs
    assert by_key["test"] == ["5w1s", "-", f"{100 * test['accuracy']:.2f}±{100 * test['ci95']:.2f}%"]


def test_a_failed_checkpoint_write_stops_the_run_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    real, calls = torch.save, []

    def full_disk(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # best.pt and last.pt at step 20 go through; the next write finds the disk full
            raise OSError(28, "No space left on device")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    run = tmp_path / "run"
    assert main(["train", str(_recipe(tmp_path, 60)), "--out", str(run), "--quiet"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "No space left on device" in error[0] and "intact" in error[0]
    monkeypatch.undo()
    assert load_checkpoint(run / "last.pt")["step"] == 20
    assert read_status(run)["status"] == "failed"
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def _nan_after(step: int):
    """Patch protonet's loss to turn NaN from the `step`-th call on."""
    from polyskill.meta import PrototypicalNetworks

    real, calls = PrototypicalNetworks.meta_loss, []

    def loss(self, batch):
        value, metrics = real(self, batch)
        calls.append(1)
        if len(calls) >= step:
            return value * float("nan"), {**metrics, "loss": metrics["loss"] * float("nan")}
        return value, metrics

    return loss


def test_a_non_finite_loss_stops_with_its_step_the_last_metrics_and_the_good_checkpoint(tmp_path, monkeypatch, capsys):
    from polyskill.meta import PrototypicalNetworks

    monkeypatch.setattr(PrototypicalNetworks, "meta_loss", _nan_after(45))
    run = tmp_path / "run"
    assert main(["train", str(_recipe(tmp_path, 100)), "--out", str(run), "--quiet"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1
    last = [r for r in read_metrics(run / "metrics.jsonl") if "loss" in r][-1]
    assert last["step"] == 42
    assert "diverged at step 45" in error[0] and f"metrics: (step 42) loss {last['loss']:.4g}" in error[0]
    assert f"{run / 'last.pt'} (step 40)" in error[0]
    state = load_checkpoint(run / "last.pt")
    assert state["step"] == 40 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert read_status(run)["status"] == "diverged"


def test_non_finite_parameters_are_never_checkpointed(tmp_path, monkeypatch, capsys):
    real = torch.optim.Adam.step
    calls = []

    def poisoned(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 25:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("inf"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", poisoned)
    run = tmp_path / "run"
    assert main(["train", str(_recipe(tmp_path, 100)), "--out", str(run), "--quiet"]) == 2
    assert "non-finite" in capsys.readouterr().err
    assert load_checkpoint(run / "last.pt")["step"] == 20


@pytest.mark.parametrize(
    "args, needles",
    [
        (["train", "--resume", "no/such/run"], ["no run to resume at no/such/run"]),
        (["train"], ["name a recipe"]),
        (["train", "omniglot-protonet", "--set", "algo.name=mamll"], ["algo.name must be one of"]),
        (["train", "omniglot-protonet", "--set", "model.hidden=[1"], ["model.hidden must be"]),
        (["train", "omniglot-protonet", "--set", "=3"], ["bad --set '=3'"]),
        (
            ["train", "omniglot-protonet", "--logger", "wandb"],
            ["train.loggers must be one of tensorboard, mlflow, got 'wandb'"],
        ),
        (["runs", "no/such/dir"], ["no directory at no/such/dir"]),
        (["compare", "no/such/run"], ["no run directory at no/such/run"]),
        (["report", "no/such/run"], ["no/such/run"]),
    ],
)
def test_each_bad_input_is_one_clear_line_and_exit_code_2(args, needles, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("polyskill: error:"), err
    for needle in needles:
        assert needle in err[0]


def test_help_shows_examples(capsys):
    for command in (
        [],
        ["train"],
        ["eval"],
        ["runs"],
        ["compare"],
        ["report"],
        ["sweep"],
        ["adapt"],
        ["affinity"],
        ["recipes"],
        ["data"],
    ):
        with pytest.raises(SystemExit) as exit_code:
            main([*command, "--help"])
        assert exit_code.value.code == 0
        assert "example" in capsys.readouterr().out, command


def _on_a_terminal(*args: str | Path) -> str:
    """What `polyskill ARGS` shows on a 150-column terminal (a pseudo-terminal), carriage returns as lines."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 150, 0, 0))
    child = subprocess.Popen(_cli(*args), stdin=slave, stdout=slave, stderr=slave, env=ENV, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    child.wait(timeout=300)
    os.close(master)
    assert child.returncode == 0
    return b"".join(chunks).decode(errors="replace").replace("\r", "\n")


def test_progress_bars_show_rate_eta_loss_and_accuracy_on_a_terminal_and_nothing_when_quiet(tmp_path):
    recipe = tiny_recipe(tmp_path, steps=200, val_every=100, log_every=10)
    shown = _on_a_terminal("train", recipe, "--out", tmp_path / "a", "--set", "eval.episodes=300")
    train = [line for line in shown.splitlines() if line.startswith("train:") and "loss=" in line]
    assert train and all(key in train[-1] for key in ("step/s", "acc=", "<")), shown[-2000:]
    evaluate = [line for line in shown.splitlines() if line.startswith("evaluate:") and "mean=" in line]
    assert evaluate and "task/s" in evaluate[-1] and "/300" in evaluate[-1]
    short = tiny_recipe(tmp_path, name="short", steps=20, val_every=10, log_every=10)
    quiet = _on_a_terminal("train", short, "--out", tmp_path / "b", "--quiet", "--set", "eval.episodes=20")
    assert "train:" not in quiet and "evaluate:" not in quiet and "test 5-way 1-shot" in quiet
