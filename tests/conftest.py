"""Shared fixtures: the real data root (../shared/data unless POLYSKILL_DATA says otherwise) and small datasets."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("POLYSKILL_DATA", str(REPO.parent / "shared" / "data"))
os.environ["POLYSKILL_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"  # pretrained encoders come from local directories; nothing is downloaded
# One thread unless told otherwise: on a shared machine a second OpenMP thread that has to wait for a busy core
# spins, and small operations then run a hundred times slower.
torch.set_num_threads(int(os.environ.get("POLYSKILL_TEST_THREADS", "1")))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules marked `heavy` first (the order is otherwise kept): pytest-xdist hands whole files to its workers
    in this order (`make test` turns its reordering off), so a long file never starts last while the other
    worker has nothing left to do."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ["POLYSKILL_DATA"])
    if not (root / "omniglot" / "images_background.npz").is_file():
        pytest.fail(f"the Omniglot files are not under {root}; set POLYSKILL_DATA to the shared data folder")
    return root


@pytest.fixture(scope="session")
def omniglot_train(data_root):
    from polyskill.data import omniglot

    return omniglot("vinyals/train", root=data_root)


@pytest.fixture(scope="session")
def omniglot_val(data_root):
    from polyskill.data import omniglot

    return omniglot("vinyals/val", root=data_root)


def predict_and_adapt(algo, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """An algorithm's outputs on a TaskBatch both ways, without gradients: `predict` on the whole batch, and
    `adapt` to each task's support set in turn (the two must agree)."""
    with torch.no_grad():
        batched = algo.predict(batch)
        per_task = torch.stack([algo.adapt(batch.support(i))(batch.query_x[i]) for i in range(len(batch))])
    return batched, per_task


TINY_RECIPE = {  # a real Omniglot run that trains in seconds: the command-line tests' workhorse
    "kind": "fewshot",
    "data": {"dataset": "omniglot", "train": "vinyals/val", "val": "vinyals/test", "test": "vinyals/test"},
    "model": {"hidden": 8},
    "episodes": {"way": 5, "shot": 1, "query": 2},
    "validation": {"way": 5, "shot": None, "query": 2},
    "train": {"steps": 6, "val_every": 3, "val_episodes": 4, "log_every": 2, "precision": "fp32"},
    "eval": {"ways": [5], "episodes": 10},
}


def tiny_recipe(folder: Path, name: str = "tiny", **train) -> Path:
    """Write the tiny recipe, with `train` section overrides, to folder/NAME.yaml."""
    import yaml

    recipe = {**TINY_RECIPE, "train": {**TINY_RECIPE["train"], **train}}
    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def polyskill_cli(
    *args, cwd: Path | None = None, env: dict | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run `polyskill ARGS` in a fresh interpreter at one OpenMP thread."""
    env = {**(os.environ if env is None else env), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "polyskill.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def polyskill_in_process(*args: object) -> subprocess.CompletedProcess:
    """`polyskill ARGS` in this process, through the command's own entry point with its output captured, as a
    CompletedProcess: no interpreter and torch start-up per command; an exception escaping the command (which
    a separate process would print as a traceback) fails the calling test outright."""
    from polyskill.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess([str(a) for a in args], code, out.getvalue(), err.getvalue())


@pytest.fixture
def float64():
    """float64 as the default dtype for one test (numerical checks against an independent computation)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture(scope="session")
def serve_runs(tmp_path_factory, data_root) -> dict[str, Path]:
    """The runs the serve tests teach tasks to: a ProtoNet and a MAML (3-way) Omniglot run and a ProtoNet text run
    on CLINC150, each trained for a step or a few (enough to serve, not to be good); shared by the API's and the
    page's tests."""
    from serve_support import train_image_run, train_text_run

    root = tmp_path_factory.mktemp("serve-runs")
    return {
        "shapes": train_image_run(root / "shapes"),
        "maml": train_image_run(root / "maml", "maml"),
        "intents": train_text_run(root / "intents"),
    }
