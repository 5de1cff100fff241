"""School (Inner London Education Authority): 139 schools, 15362 students, one regression task per school.

Each student has 28 features (year, school and student descriptors, the last a constant 1) and an exam score.
Splits are drawn within each school: a seeded `test_fraction` of its students is test, `val_fraction` of the
rest validation, the remainder train, with every school keeping at least one student in every split. Features
are standardised with the training split's statistics; targets stay raw exam scores. The split and
standardisation of a (root, split_seed, fractions) are computed once per process.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from .files import fetch
from .multitask import MultiTaskData
from .root import data_root

NAME = "school/school.mat"
FEATURES = 28
SPLITS = ("train", "val", "test")


def read_school(path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-school features (float64 [n_i, 28]) and exam scores (float64 [n_i]) from MATLAB file `path`."""
    import scipy.io  # imported here: only this loader needs scipy, and it is slow to import

    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises many types (MatReadError, ValueError, TypeError...) for bad files
        raise DataError(f"cannot read School file {path} as a MATLAB v5 file: {exc}") from None
    cells = [mat.get(key) for key in ("X", "Y")]
    if any(not isinstance(c, np.ndarray) or c.dtype != object or c.ndim != 2 or c.shape[0] != 1 for c in cells):
        raise DataError(f"School file {path} must hold 1xK cell arrays X and Y")
    if cells[0].shape[1] == 0:
        raise DataError(f"School file {path} holds no school")
    if cells[0].shape != cells[1].shape:
        raise DataError(f"School file {path}: X has {cells[0].shape[1]} schools but Y has {cells[1].shape[1]}")
    features, scores = [], []
    for i, (x, y) in enumerate(zip(cells[0][0], cells[1][0], strict=True), start=1):
        if not (
            isinstance(x, np.ndarray)
            and isinstance(y, np.ndarray)
            and x.dtype.kind in "uif"
            and y.dtype.kind in "uif"
            and x.ndim == 2
            and x.shape[1] == FEATURES
            and y.size == x.shape[0]
            and y.ndim in (1, 2)
        ):
            raise DataError(
                f"School file {path}, school {i}: expected numeric X [n, {FEATURES}] and Y [n, 1], got "
                f"X {getattr(x, 'shape', None)} and Y {getattr(y, 'shape', None)}"
            )
        features.append(x.astype(np.float64))
        scores.append(y.reshape(-1).astype(np.float64))
    return features, scores


def within_task_split(
    sizes: list[int], test_fraction: float, val_fraction: float, generator: torch.Generator
) -> dict[str, list[Tensor]]:
    """Per task, the sorted indices (into that task's examples) of its train, val and test examples.

    A task of n examples gets round(test_fraction * n) test examples and round(val_fraction * rest) validation
    examples, each clamped so that every split keeps at least one. The permutations are drawn task by task from
    `generator`, and the test examples are the first of each permutation, so the test split depends on the seed
    and `test_fraction` only. Shared by the School and Parkinsons (per-subject) loaders.
    """
    out: dict[str, list[Tensor]] = {s: [] for s in SPLITS}
    for n in sizes:
        order = torch.randperm(n, generator=generator)
        n_test = min(max(math.floor(test_fraction * n + 0.5), 1), n - 2)
        n_val = min(max(math.floor(val_fraction * (n - n_test) + 0.5), 1), n - n_test - 1)
        out["test"].append(order[:n_test].sort().values)
        out["val"].append(order[n_test : n_test + n_val].sort().values)
        out["train"].append(order[n_test + n_val :].sort().values)
    return out


def check_fractions(test_fraction: float, val_fraction: float) -> None:
    """ConfigError unless both fractions lie strictly between 0 and 1."""
    for name, value in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ConfigError(f"{name} must lie strictly between 0 and 1, got {value!r}")


def standardise(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """`x` centred and scaled by the mean and (population) std of the rows `train`; constant columns become 0."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    return (x - mean) / np.where(std > 0, std, 1.0)


@functools.lru_cache(maxsize=8)
def _build(
    root: Path, split_seed: int, test_fraction: float, val_fraction: float
) -> tuple[int, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]:
    """The number of schools and per split (row indices into the concatenated file, standardised x, scores,
    school index)."""
    path = fetch(NAME, root)
    features, scores = read_school(path)
    sizes = [len(y) for y in scores]
    if min(sizes) < 3:
        raise DataError(
            f"School file {path} has a school with {min(sizes)} students; every school needs at least 3 (one per split)"
        )
    generator = torch.Generator().manual_seed(split_seed)
    parts = within_task_split(sizes, test_fraction, val_fraction, generator)
    offsets = np.cumsum([0, *sizes[:-1]])
    x_all, y_all = np.concatenate(features), np.concatenate(scores)
    school_all = np.repeat(np.arange(len(sizes)), sizes)
    rows = {s: np.concatenate([o + p.numpy() for o, p in zip(offsets, parts[s], strict=True)]) for s in SPLITS}
    x_std = standardise(x_all, x_all[rows["train"]])
    return len(sizes), {s: (r, x_std[r], y_all[r], school_all[r]) for s, r in rows.items()}


def _split(
    split: str, root: str | os.PathLike | None, split_seed: int, test_fraction: float, val_fraction: float
) -> tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    if split not in SPLITS:
        raise ConfigError(f"unknown School split {split!r}; choose one of {', '.join(SPLITS)}")
    if not isinstance(split_seed, int):
        raise ConfigError(f"School split_seed must be an integer, got {split_seed!r}")
    check_fractions(test_fraction, val_fraction)
    n_schools, splits = _build(data_root(root), split_seed, float(test_fraction), float(val_fraction))
    return n_schools, splits[split]


def school_rows(
    split: str,
    root: str | os.PathLike | None = None,
    split_seed: int = 0,
    test_fraction: float = 0.25,
    val_fraction: float = 0.1,
) -> Tensor:
    """Indices (int64) of `split`'s students among all 15362, in the file's order (school 1 first)."""
    return torch.from_numpy(_split(split, root, split_seed, test_fraction, val_fraction)[1][0].copy())


def school(
    split: str,
    root: str | os.PathLike | None = None,
    split_seed: int = 0,
    test_fraction: float = 0.25,
    val_fraction: float = 0.1,
) -> MultiTaskData:
    """School `split`: partitioned regression, x float32 [N, 28], y float32 [N] exam scores, task [N] (school).

    Tasks "school001".."school139". The usual protocol repeats the experiment for split_seed 0..9.
    """
    n_schools, (_, x, y, task) = _split(split, root, split_seed, test_fraction, val_fraction)
    names = tuple(f"school{i:03d}" for i in range(1, n_schools + 1))
    return MultiTaskData(
        names,
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(y.astype(np.float32)),
        (0,) * len(names),
        torch.from_numpy(task.astype(np.int64)),
    )
