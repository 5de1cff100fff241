"""The command line: a tiny end-to-end run, and one clear line with exit code 2 for every bad input."""

from __future__ import annotations

import json
import pickle
import subprocess

import pytest
from conftest import polyskill_cli as polyskill
from conftest import polyskill_in_process as in_process
from conftest import tiny_recipe

pytestmark = pytest.mark.heavy  # see conftest: handed to a worker first


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    tiny_recipe(folder)
    result = polyskill("train", folder / "tiny.yaml", "--out", folder / "run", "--quiet")
    assert result.returncode == 0, result.stderr
    return folder, result


def test_train_writes_a_complete_run(tiny_run):
    folder, result = tiny_run
    run = folder / "run"
    assert {"config.yaml", "metrics.jsonl", "last.pt", "best.pt", "summary.json"} <= {p.name for p in run.iterdir()}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["recipe"] == "tiny"
    assert summary["test"][0]["way"] == 5 and summary["test"][0]["episodes"] == 10
    assert "test 5-way 1-shot:" in result.stdout


def test_eval_and_resume(tiny_run):
    folder, _ = tiny_run
    result = polyskill("eval", folder / "run", "--way", "3", "--shot", "1", "--episodes", "7")
    assert result.returncode == 0, result.stderr
    assert "3-way 1-shot" in result.stdout and "7 episodes" in result.stdout
    summary = json.loads((folder / "run" / "summary.json").read_text())
    assert {(r["way"], r["episodes"]) for r in summary["test"]} == {(5, 10), (3, 7)}

    again = in_process("train", folder / "tiny.yaml", "--out", folder / "run", "--quiet")
    assert again.returncode == 2 and "already holds a run" in again.stderr

    more = polyskill(
        "train",
        folder / "tiny.yaml",
        "--out",
        folder / "run",
        "--resume",
        "--quiet",
        "--no-eval",
        "--set",
        "train.steps=8",
    )
    assert more.returncode == 0, more.stderr
    assert "resuming" in more.stdout and json.loads((folder / "run" / "summary.json").read_text())["steps"] == 8


def _one_clear_line(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("polyskill: error:"), result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    "args, needles",
    [
        (["train", "omniglot-protonet", "--set", "train.stepz=1"], ["unknown key 'train.stepz'"]),
        (["train", "omniglot-protonet", "--set", "train.steps=abc"], ["train.steps must be an integer"]),
        (["train", "omniglot-protonet", "--set", "oops"], ["bad --set 'oops'"]),
        (["train", "omniglot-maml-typo"], ["no recipe named"]),
        (["eval", "no/such/run"], ["no run directory"]),
        (["eval", ".", "--way", "1"], ["--way must be >= 2", "always right"]),
        (["eval", ".", "--shot", "0"], ["--shot must be >= 1"]),
    ],
)
def test_bad_inputs(args, needles, tmp_path, monkeypatch):
    """In this process (the command's entry point), as the other error cases; the runs above and below start
    the command as its own process."""
    monkeypatch.chdir(tmp_path)
    _one_clear_line(in_process(*args), *needles)


def test_missing_data_is_one_clear_line(tmp_path):
    tiny_recipe(tmp_path)
    result = in_process("train", tmp_path / "tiny.yaml", "--out", tmp_path / "run", "--root", tmp_path / "empty")
    _one_clear_line(result, "missing", str(tmp_path / "empty"))
    assert not (tmp_path / "run").exists()  # a failed start leaves nothing that blocks the next attempt


def test_crafted_checkpoint_is_refused(tiny_run, tmp_path):
    folder, _ = tiny_run
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text((folder / "run" / "config.yaml").read_text())
    marker = tmp_path / "executed"
    (run / "best.pt").write_bytes(pickle.dumps(_Payload(marker)))
    _one_clear_line(in_process("eval", run), "refusing")
    assert not marker.exists()


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_data_verify_flags_a_corrupt_file(tmp_path, data_root):
    target = tmp_path / "omniglot" / "alphabets.json"
    target.parent.mkdir(parents=True)
    target.write_text((data_root / "omniglot" / "alphabets.json").read_text()[:-10])
    result = in_process("data", "verify", "--root", tmp_path)
    _one_clear_line(result, "1 corrupt file(s)", "omniglot/alphabets.json")
    assert "corrupt  omniglot/alphabets.json" in result.stdout  # the listing stays on stdout
    assert "missing  omniglot/images_background.npz" in result.stdout


def test_data_list_names_the_colour_sets_present_or_missing(tmp_path):
    (tmp_path / "cub").mkdir()
    result = in_process("data", "list", "--root", tmp_path)
    assert result.returncode == 0
    assert "folder   cub/ (CUB-200-2011" in result.stdout
    assert "missing  mini-imagenet/ (miniImageNet" in result.stdout and "missing  cifar-fs/" in result.stdout


def test_recipes_lists_the_shipped_recipes():
    result = in_process("recipes")
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert result.returncode == 0 and {"omniglot-protonet", "omniglot-maml", "sinusoid-maml"} <= set(names)


def test_checkpoint_of_another_model_is_a_clear_error(tiny_run, tmp_path):
    folder, _ = tiny_run
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text((folder / "run" / "config.yaml").read_text().replace("hidden: 8", "hidden: 16"))
    (run / "best.pt").write_bytes((folder / "run" / "best.pt").read_bytes())
    _one_clear_line(in_process("eval", run), "does not fit the model")


TINY_MAML = """
kind: fewshot
data: {dataset: omniglot, train: vinyals/val, val: vinyals/test, test: vinyals/test}
model: {hidden: 8}
algo: {name: maml, inner_lr: 0.4, inner_steps: 1, eval_steps: 2}
episodes: {way: 5, shot: 1, query: 2}
validation: {way: 5, shot: null, query: 2}
train: {steps: 2, meta_batch: 2, val_every: 2, val_episodes: 4, log_every: 1, precision: fp32}
eval: {ways: [5], episodes: 10, steps: [0, 2]}
"""


def test_a_gradient_based_run_evaluates_at_several_step_counts_and_refuses_another_way(tmp_path):
    (tmp_path / "maml.yaml").write_text(TINY_MAML)
    result = polyskill("train", tmp_path / "maml.yaml", "--out", tmp_path / "run", "--quiet")
    assert result.returncode == 0, result.stderr
    tests = json.loads((tmp_path / "run" / "summary.json").read_text())["test"]
    assert sorted(r["steps"] for r in tests) == [0, 2] and all(r["way"] == 5 for r in tests)
    wrong = in_process("eval", tmp_path / "run", "--way", "20")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "5-way output layer" in wrong.stderr and "episodes.way=20" in wrong.stderr


def test_sinusoid_run_reports_mse(tmp_path):
    result = polyskill(
        "train",
        "sinusoid-maml",
        "--set",
        "train.steps=20",
        "--set",
        "eval.episodes=20",
        "--out",
        tmp_path / "run",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    tests = json.loads((tmp_path / "run" / "summary.json").read_text())["test"]
    assert [r["steps"] for r in tests] == [1, 10] and all(r["mse"] > 0 for r in tests)
    bad = in_process("train", "sinusoid-maml", "--set", "model.backbone=conv4", "--out", tmp_path / "bad")
    assert bad.returncode == 2 and "model.backbone must be one of mlp" in bad.stderr
    assert not (tmp_path / "bad").exists()
