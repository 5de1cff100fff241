"""Distributed training on 2 gloo processes: the same parameters as one process given the same global
meta-batch (the ranks' task streams, concatenated in rank order)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import polyskill_in_process, tiny_recipe
from rank_support import train_on_ranks

from polyskill.cli import main
from polyskill.data import EpisodeSampler
from polyskill.distributed import ShardedStream
from polyskill.distributed.batch_norm import sync_batch_norms
from polyskill.recipes import load
from polyskill.recipes.kinds.fewshot import algorithm, dataset
from polyskill.train import FitConfig, Trainer, load_checkpoint

pytestmark = pytest.mark.heavy  # see conftest: handed to a worker first

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

ALGOS = {  # plain SGD: Adam turns float-summation noise in near-zero gradients into lr-sized steps
    "maml": [
        "algo.name=maml",
        "algo.inner_steps=2",
        "algo.inner_lr=0.4",
        "episodes.query=3",
        "train.optimizer=sgd",
        "train.lr=0.1",
    ],
    "protonet": ["train.optimizer=sgd", "train.lr=0.05", "train.momentum=0.0"],
    "matching": ["algo.name=matching", "train.optimizer=sgd", "train.lr=0.05", "train.momentum=0.0"],
    "metaoptnet": [
        "algo.name=metaoptnet",
        "algo.head=ridge",
        "train.optimizer=sgd",
        "train.lr=0.05",
        "train.momentum=0.0",
    ],
    "task_conditioned": [
        "algo.name=task_conditioned",
        "algo.first_order=true",
        "algo.z_dim=8",
        "algo.hidden=16",
        "algo.slots=4",
        "train.optimizer=sgd",
        "train.lr=0.05",
        "train.momentum=0.0",
    ],
    "reptile": [
        "algo.name=reptile",
        "algo.inner_steps=3",
        "algo.inner_batch=3",
        "algo.shared_moments=false",
        "algo.inner_optimizer=sgd",
        "train.optimizer=sgd",
        "train.lr=1.0",
        "train.momentum=0.0",
    ],
}


def _single_process(recipe_path: Path, overrides: list[str], world: int) -> dict[str, torch.Tensor]:
    """The reference: one process, the meta-batch drawn from every rank's stream in turn."""
    recipe = load(recipe_path, overrides)
    algo = algorithm(recipe)
    if not type(algo).contract.per_task_batch_norm:
        sync_batch_norms(algo)  # the same arithmetic as the ranks (torch's CPU kernel is off by ~1e-3)
    spec = recipe.episodes
    classes = dataset(recipe, "train")
    stream = ShardedStream(
        lambda seed: EpisodeSampler(classes, spec.way, spec.shot, spec.query, seed=seed),
        recipe.train.seed,
        list(range(world)),
    )
    Trainer(algo, stream, FitConfig(**{**vars(recipe.train), "val_every": recipe.train.steps}), progress=False).fit()
    return {k: v.detach().clone() for k, v in algo.named_parameters()}


RESUMED = ["train.val_every=3"]  # the resume test's runs: validated (and checkpointed) every 3 steps
BUDGET = ["train.steps=100000", "train.val_every=50", "train.meta_batch=2", "train.max_minutes=0.05"]


@pytest.fixture(scope="module")
def distributed_runs(tmp_path_factory) -> Path:
    """On 2 gloo processes, with one start-up for all of them: every learner trained for 6 steps; the resume
    test's uninterrupted 12 steps and its first 6; a run stopped by a time budget."""
    folder = tmp_path_factory.mktemp("distributed")
    recipe = str(tiny_recipe(folder, steps=6, val_every=6, meta_batch=4, log_every=2))
    jobs = [(recipe, [*ALGOS[name], "data.val=null"], str(folder / name)) for name in sorted(ALGOS)]
    jobs += [
        (recipe, [*RESUMED, "train.steps=12"], str(folder / "straight")),
        (recipe, [*RESUMED, "train.steps=6"], str(folder / "split")),
        (recipe, [*BUDGET, "data.val=null"], str(folder / "budget")),
    ]
    train_on_ranks(jobs)
    return folder


@pytest.mark.parametrize("name", sorted(ALGOS))
def test_two_processes_end_with_the_parameters_of_one_given_the_same_global_batch(name, distributed_runs):
    distributed = load_checkpoint(distributed_runs / name / "last.pt")
    assert len(distributed["ranks"]) == 2
    reference = _single_process(distributed_runs / "tiny.yaml", [*ALGOS[name], "data.val=null"], world=2)
    assert reference
    for key, value in reference.items():
        # a convolution's bias right before batch norm has a zero gradient in exact arithmetic: both runs
        # move it by float noise only, so it is held to that noise's size
        tolerance = 1e-3 if key.endswith(".0.bias") else 1e-5
        assert torch.allclose(distributed["model"][key], value, atol=tolerance, rtol=1e-5), (
            key,
            (distributed["model"][key] - value).abs().max(),
        )


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of the launched process of `rank` (a child of `parent`), read from its environment."""
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return int(child)
    return None


@pytest.mark.parametrize("fault", ["killed", "hung"])
def test_a_killed_or_hung_rank_stops_the_others_with_a_clear_error_and_a_non_zero_exit(fault, tmp_path):
    """SIGKILL (the peer's connection closes) or SIGSTOP (it never answers: the collective timeout, here 5 s)."""
    import signal
    import time

    recipe = tiny_recipe(tmp_path, steps=100000, val_every=50, meta_batch=2)
    run = tmp_path / "run"
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "polyskill.cli",
            "train",
            str(recipe),
            "--set",
            "data.val=null",
            "--out",
            str(run),
            "--nproc",
            "2",
            "--quiet",
            "--no-eval",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, "POLYSKILL_COLLECTIVE_TIMEOUT": "5"},
    )
    deadline = time.monotonic() + 120
    while not (run / "last.pt").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = _rank_pid(launcher.pid, 1)
    assert victim is not None and launcher.poll() is None
    os.kill(victim, signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
    struck = time.monotonic()
    _, err = launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    assert time.monotonic() - struck < 60
    assert "another process of this 2-process run failed or stopped responding" in err, err
    assert "Traceback" not in err
    assert load_checkpoint(run / "last.pt")["step"] % 50 == 0  # the last checkpoint is whole


def test_a_distributed_run_resumes_to_the_run_it_would_have_been(distributed_runs, tmp_path, capsys):
    """Every rank's stream and RNG come back from last.pt: 6 steps, then 6 more through `polyskill train --resume
    --nproc 2`, equal 12 in one go."""
    split = tmp_path / "split"
    shutil.copytree(distributed_runs / "split", split)
    assert len(load_checkpoint(split / "last.pt")["ranks"]) == 2
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "polyskill.cli",
            "train",
            "--resume",
            str(split),
            "--set",
            "train.steps=12",
            "--nproc",
            "2",
            "--quiet",
            "--no-eval",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stdout and "at step 6" in done.stdout, done.stdout
    a, b = (load_checkpoint(run / "last.pt") for run in (distributed_runs / "straight", split))
    assert a["step"] == b["step"] == 12
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert main(["train", "--resume", str(split), "--quiet"]) == 2
    assert "saved by 2 process(es)" in capsys.readouterr().err


def test_test_episodes_are_split_over_the_ranks_and_gathered(tmp_path):
    """The 2-process run's test protocols give exactly what one process gives on the same weights."""
    recipe = tiny_recipe(tmp_path, steps=4, val_every=2, meta_batch=2)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "polyskill.cli",
            "train",
            str(recipe),
            "--set",
            "eval.episodes=25",
            "--out",
            str(tmp_path / "run"),
            "--nproc",
            "2",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("test 5-way 1-shot") == 1  # rank 0 speaks
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    [distributed] = summary["test"]
    again = polyskill_in_process("eval", tmp_path / "run", "--episodes", "25")  # one process
    assert again.returncode == 0, again.stderr
    [single] = json.loads((tmp_path / "run" / "summary.json").read_text())["test"]
    assert single["episodes"] == distributed["episodes"] == 25
    assert abs(single["accuracy"] - distributed["accuracy"]) < 1e-9 and abs(single["ci95"] - distributed["ci95"]) < 1e-9


def test_torchrun_runs_the_same_module_the_same_way(tmp_path):
    """`torchrun -m polyskill.cli train ...` (how several machines are used) trains what `--nproc` trains: the
    parameters one process reaches on the same global batches (as the `--nproc` runs above are held to)."""
    recipe = tiny_recipe(tmp_path, steps=4, val_every=2, meta_batch=2)
    overrides = [*ALGOS["protonet"], "data.val=null"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "polyskill.cli",
            "train",
            str(recipe),
            *[arg for o in overrides for arg in ("--set", o)],
            "--quiet",
            "--no-eval",
            "--out",
            str(tmp_path / "torchrun"),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    trained = load_checkpoint(tmp_path / "torchrun" / "last.pt")
    assert len(trained["ranks"]) == 2
    reference = _single_process(recipe, overrides, world=2)
    for key, value in reference.items():
        tolerance = 1e-3 if key.endswith(".0.bias") else 1e-5  # as above: zero-gradient biases move by noise only
        assert torch.allclose(trained["model"][key], value, atol=tolerance, rtol=1e-5), key


def test_a_time_budget_stops_every_rank_at_the_same_step(distributed_runs):
    """Each rank has its own clock: they agree on when the budget is spent, or they would wait on each other."""
    run = distributed_runs / "budget"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "stopped at the time budget" and 0 < summary["steps"] < 100000
    checkpoint = load_checkpoint(run / "last.pt")
    assert checkpoint["step"] == summary["steps"] and len(checkpoint["ranks"]) == 2
