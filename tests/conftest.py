"""Shared fixtures: the real data root (../shared/data unless POLYSKILL_DATA says otherwise) and small datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("POLYSKILL_DATA", str(REPO.parent / "shared" / "data"))
os.environ["POLYSKILL_OFFLINE"] = "1"
# One thread unless told otherwise: on a shared machine a second OpenMP thread that has to wait for a busy core
# spins, and small operations then run a hundred times slower.
torch.set_num_threads(int(os.environ.get("POLYSKILL_TEST_THREADS", "1")))


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
