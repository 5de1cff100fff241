"""Hostile use of the runner: concurrent starts, changed resumes, runs that died early, damaged checkpoints, an
evaluation during training, recipes without a kind. Each bad input is one `polyskill: error:` line, exit code 2,
and a run directory left exactly as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import polyskill_in_process, tiny_recipe

from polyskill.cli import main
from polyskill.train import read_metrics

pytestmark = pytest.mark.heavy  # see conftest: handed to a worker first

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "polyskill.cli", *map(str, args)]


def snapshot(run: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below `run` with its bytes and modification time: what 'untouched' means."""
    return {
        str(p.relative_to(run)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run.rglob("*")) if p.is_file()
    }


def one_error(capsys: pytest.CaptureFixture, code: int) -> str:
    """The single error line of a command that exited with `code` (asserted to be 2)."""
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("polyskill: error:"), err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished tiny run (6 steps, checkpoints at 3 and 6) to resume and damage copies of."""
    folder = tmp_path_factory.mktemp("hostile-runs")
    run = folder / "run"
    assert main(["train", str(tiny_recipe(folder)), "--out", str(run), "--quiet", "--no-eval"]) == 0
    return run


def _copy(run: Path, to: Path) -> Path:
    subprocess.run(["cp", "-a", str(run), str(to)], check=True)
    return to


@pytest.mark.parametrize("change", ["model.hidden=32", "train.optimizer=sgd", "episodes.way=3", "algo.name=matching"])
def test_a_resume_that_changes_what_the_checkpoint_holds_is_refused_and_changes_nothing(
    trained, tmp_path, capsys, change
):
    run = _copy(trained, tmp_path / "run")
    before = snapshot(run)
    line = one_error(
        capsys, main(["train", "--resume", str(run), "--set", change, "--set", "train.steps=9", "--quiet"])
    )
    assert f"cannot change {change.split('=')[0]} when resuming" in line
    assert snapshot(run) == before


def test_a_resume_with_a_new_learning_rate_applies_it(trained, tmp_path):
    run = _copy(trained, tmp_path / "run")
    assert (
        main(
            [
                "train",
                "--resume",
                str(run),
                "--set",
                "train.lr=0.0123",
                "--set",
                "train.steps=8",
                "--quiet",
                "--no-eval",
            ]
        )
        == 0
    )
    lrs = {r["step"]: r["lr"] for r in read_metrics(run / "metrics.jsonl") if "lr" in r}
    assert lrs[8] == pytest.approx(0.0123) and lrs[6] == pytest.approx(1e-3)  # the tiny recipe: constant 1e-3


def test_a_refused_resume_leaves_run_json_and_config_alone(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path / "run")
    (run / "last.pt").write_bytes(b"")
    before = snapshot(run)
    line = one_error(capsys, main(["train", "--resume", str(run), "--set", "train.steps=9", "--quiet"]))
    assert "last.pt" in line and "damaged" in line
    assert snapshot(run) == before


def test_a_run_that_died_before_its_first_checkpoint_starts_again(trained, tmp_path, capsys):
    for how in (["RECIPE"], ["--resume"]):
        run = _copy(trained, tmp_path / f"run{len(how)}{how[0][2:]}")
        for name in ("last.pt", "best.pt", "summary.json"):
            (run / name).unlink()
        args = (
            ["train", str(tiny_recipe(tmp_path)), "--out", str(run)]
            if how == ["RECIPE"]
            else ["train", "--resume", str(run)]
        )
        assert main([*args, "--quiet", "--no-eval"]) == 0
        assert "training it again from step 0" in capsys.readouterr().out
        steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
        assert steps == [2, 4, 6]  # one clean run, nothing of the dead attempt left in the records


def test_the_same_recipe_into_a_finished_run_is_refused(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path / "run")
    before = snapshot(run)
    line = one_error(capsys, main(["train", str(tiny_recipe(tmp_path)), "--out", str(run), "--quiet"]))
    assert "already holds a run" in line
    assert snapshot(run) == before


def test_two_trainings_started_at_once_into_one_directory_never_both_run(tmp_path):
    recipe = tiny_recipe(tmp_path, steps=400, val_every=100, log_every=50)
    run = tmp_path / "run"
    starts = [
        subprocess.Popen(
            _cli("train", recipe, "--out", run, "--quiet", "--no-eval"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for _ in range(2)
    ]
    outcomes = [(p.wait(timeout=600), p.stderr.read()) for p in starts]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], outcomes
    [(_, refused)] = [o for o in outcomes if o[0] == 2]
    lines = refused.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("polyskill: error:"), lines
    assert "being trained by another process" in lines[0] or "already holds a run" in lines[0]
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 400  # one run's records, not two interleaved


def test_an_evaluation_during_training_is_kept_in_the_summary(tmp_path):
    """The evaluation runs in this process while the training process is still going."""
    recipe = tiny_recipe(tmp_path, steps=600, val_every=50, log_every=50)
    run = tmp_path / "run"
    child = subprocess.Popen(
        _cli("train", recipe, "--out", run, "--quiet", "--no-eval"),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (run / "best.pt").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        evaluated = polyskill_in_process("eval", run, "--way", "3", "--episodes", "4", "--quiet")
        assert evaluated.returncode == 0, evaluated.stderr
        assert child.poll() is None, "training ended before the evaluation: make it longer"
    finally:
        code = child.wait(timeout=600)
    assert code == 0, child.stderr.read()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 600
    assert [(r["way"], r["episodes"]) for r in summary["test"]] == [(3, 4)]


@pytest.mark.parametrize(
    "text, needle",
    [
        ("data: {dataset: omniglot}\n", "add `kind: fewshot` as its first line"),
        ("kind: fewshot\nmtl: {weighting: ew}\n", "section 'mtl' is not used by fewshot recipes"),
        (
            "kind: multitask\ndata: {dataset: school}\ntrain: {meta_batch: 4}\n",
            "train.meta_batch is not used by multitask",
        ),
        ("kind: regression\nalgo: {name: protonet}\n", "algo.name protonet: it classifies"),
        ("kind: fewshot\nmodel: {backbone: lenet}\n", "model.backbone must be one of conv4, mlp"),
        ("kind: tabular\n", "kind must be one of fewshot, regression, multitask"),
        ("kind: fewshot\ntrain: {lr: .nan}\n", "train.lr must be"),
        ("kind: fewshot\ntrain: {lr: .inf}\n", "train.lr must be"),
        ("kind: fewshot\nalgo: {name: relation}\nmodel: {backbone: mlp}\n", "needs model.backbone conv4"),
        ("kind: fewshot\nalgo: {name: protonet}\neval: {steps: [1]}\n", "eval.steps applies to learners that adapt"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ],
)
def test_bad_recipe_files_are_one_line(tmp_path, capsys, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    line = one_error(capsys, main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]))
    assert needle in line, line
    assert not (tmp_path / "run").exists()


def test_a_recipe_that_is_not_utf8_is_one_line(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("kind: fewshot\ndescription: caf\xe9\n".encode("latin-1"))
    line = one_error(capsys, main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]))
    assert "not UTF-8" in line
    assert not (tmp_path / "run").exists()


def test_a_run_config_that_is_not_utf8_is_one_line(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path / "run")
    (run / "config.yaml").write_bytes(b"kind: fewshot\nname: \xff\xfe\n")
    before = snapshot(run)
    for args in (["train", "--resume", str(run), "--quiet"], ["eval", str(run), "--quiet"]):
        assert "not UTF-8" in one_error(capsys, main(args))
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "change, needle",
    [
        ("model.hidden=999999999999999999999", "model.hidden must be an integer below 2**62"),
        ("algo.name=relation", None),
        ("data.image_size=5000", "image_size must be <= 1024"),
        ("validation.query=0", "validation.query must be >= 1"),
        ("data.image_size=3", "model: cannot be built from these values"),
    ],
)
def test_values_a_network_cannot_be_built_from_are_one_line(tmp_path, capsys, change, needle):
    extra = ["--set", "algo.relation_fc=-1"] if change == "algo.name=relation" else []
    needle = needle or "algo (relation): cannot be built from these values"
    run = tmp_path / "run"
    line = one_error(
        capsys, main(["train", str(tiny_recipe(tmp_path)), "--set", change, *extra, "--out", str(run), "--quiet"])
    )
    assert needle in line, line
    assert not run.exists()


def test_two_evaluations_at_once_both_keep_their_results(trained, tmp_path):
    run = _copy(trained, tmp_path / "run")
    evals = [
        subprocess.Popen(
            _cli("eval", run, "--way", str(way), "--episodes", "6", "--quiet"),
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for way in (2, 3)
    ]
    assert [p.wait(timeout=300) for p in evals] == [0, 0], [p.stderr.read() for p in evals]
    summary = json.loads((run / "summary.json").read_text())
    assert {r["way"] for r in summary["test"] if r["episodes"] == 6} == {2, 3}
    assert all(r["weights"].startswith("best.pt (step ") for r in summary["test"] if r["episodes"] == 6)
