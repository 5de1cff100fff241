"""Parkinsons Telemonitoring (Tsanas et al., 2010): 5875 voice recordings of 42 patients with UPDRS scores.

Features are the patient's age and sex and the 16 voice measures (Jitter(%) .. PPE), standardised with training
statistics; subject#, test_time and the two targets are not features. Two set-ups:

- tasks="targets": dense regression of ("motor_UPDRS", "total_UPDRS"), split by patient (8 test, 4 validation,
  30 training patients, seeded): the test set measures patients the model has never heard. A split by recording
  would leak, since a patient's recordings share age and sex and have nearly the same score.
- tasks="subjects": partitioned regression of total_UPDRS, one task per patient ("subject01".."subject42"), split
  within each patient (25% of the recordings test, 10% of the rest validation): personalised monitoring.
"""

from __future__ import annotations

import csv
import functools
import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from .files import fetch
from .multitask import MultiTaskData
from .root import data_root
from .school import SPLITS, standardise, within_task_split

NAME = "parkinsons/parkinsons_updrs.data"
SUBJECT, TIME = "subject#", "test_time"
TARGETS = ("motor_UPDRS", "total_UPDRS")
VOICE = (
    "Jitter(%)",
    "Jitter(Abs)",
    "Jitter:RAP",
    "Jitter:PPQ5",
    "Jitter:DDP",
    "Shimmer",
    "Shimmer(dB)",
    "Shimmer:APQ3",
    "Shimmer:APQ5",
    "Shimmer:APQ11",
    "Shimmer:DDA",
    "NHR",
    "HNR",
    "RPDE",
    "DFA",
    "PPE",
)
FEATURES = ("age", "sex", *VOICE)
MODES = ("targets", "subjects")
TEST_SUBJECTS, VAL_SUBJECTS = 8, 4
TEST_FRACTION, VAL_FRACTION = 0.25, 0.1


def read_updrs(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(subject numbers int64 [N], features float64 [N, 18] in FEATURES order, targets float64 [N, 2]) from
    the UCI CSV file `path`; a missing column, a short row or a non-number is a DataError naming the line."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read Parkinsons file {path}: {exc}") from None
    if not rows:
        raise DataError(f"Parkinsons file {path} is empty")
    header = [name.strip() for name in rows[0]]
    missing = [name for name in (SUBJECT, *FEATURES, *TARGETS) if name not in header]
    if missing:
        raise DataError(f"Parkinsons file {path} lacks the column(s) {', '.join(missing)} in its header")
    body = [(number, row) for number, row in enumerate(rows[1:], start=2) if row]
    if not body:
        raise DataError(f"Parkinsons file {path} has a header but no recordings")
    values = np.empty((len(body), len(header)), dtype=np.float64)
    for i, (number, row) in enumerate(body):
        if len(row) != len(header):
            raise DataError(f"{path}, line {number}: {len(row)} fields, the header has {len(header)}")
        try:
            values[i] = [float(v) for v in row]
        except ValueError:
            raise DataError(f"{path}, line {number}: a field is not a number: {row}") from None
    if not np.isfinite(values).all():
        raise DataError(f"Parkinsons file {path} holds a non-finite value")
    column = {name: i for i, name in enumerate(header)}
    subjects = values[:, column[SUBJECT]]
    if (subjects != np.round(subjects)).any() or subjects.min() < 1:
        raise DataError(f"Parkinsons file {path}: {SUBJECT} must hold positive integers")
    return (
        subjects.astype(np.int64),
        values[:, [column[n] for n in FEATURES]],
        values[:, [column[n] for n in TARGETS]],
    )


def _subject_split(n_subjects: int, generator: torch.Generator) -> dict[str, Tensor]:
    """Sorted subject positions of each split: 8 test, 4 validation, the rest train."""
    order = torch.randperm(n_subjects, generator=generator)
    test, val = TEST_SUBJECTS, TEST_SUBJECTS + VAL_SUBJECTS
    return {
        "test": order[:test].sort().values,
        "val": order[test:val].sort().values,
        "train": order[val:].sort().values,
    }


class _SplitRows(NamedTuple):
    """One split: row indices into the file, standardised x, y, and the task index of each row (None: dense)."""

    rows: np.ndarray
    x: np.ndarray
    y: np.ndarray
    task: np.ndarray | None


@functools.lru_cache(maxsize=8)
def _build(root: Path, split_seed: int, tasks: str) -> tuple[tuple[str, ...], dict[str, _SplitRows]]:
    """Task names and each split's rows."""
    path = fetch(NAME, root)
    subjects, features, targets = read_updrs(path)
    ids, position = np.unique(subjects, return_inverse=True)
    generator = torch.Generator().manual_seed(split_seed)
    if tasks == "targets":
        if len(ids) < TEST_SUBJECTS + VAL_SUBJECTS + 1:
            raise DataError(
                f"Parkinsons file {path} has {len(ids)} subjects; the subject split needs at least "
                f"{TEST_SUBJECTS + VAL_SUBJECTS + 1}"
            )
        chosen = _subject_split(len(ids), generator)
        rows = {s: np.flatnonzero(np.isin(position, chosen[s].numpy())) for s in SPLITS}
        names: tuple[str, ...] = TARGETS
        y = targets
        task: np.ndarray | None = None  # dense: every recording has both targets
    else:
        members = [np.flatnonzero(position == k) for k in range(len(ids))]
        if min(len(m) for m in members) < 3:
            raise DataError(f"Parkinsons file {path} has a subject with fewer than 3 recordings (one per split)")
        parts = within_task_split([len(m) for m in members], TEST_FRACTION, VAL_FRACTION, generator)
        rows = {
            s: np.sort(np.concatenate([m[p.numpy()] for m, p in zip(members, parts[s], strict=True)])) for s in SPLITS
        }
        width = max(2, int(math.log10(ids.max())) + 1)
        names, y, task = tuple(f"subject{i:0{width}d}" for i in ids), targets[:, 1], position
    x = standardise(features, features[rows["train"]])
    return names, {s: _SplitRows(r, x[r], y[r], None if task is None else task[r]) for s, r in rows.items()}


def _split(
    split: str, root: str | os.PathLike | None, split_seed: int, tasks: str
) -> tuple[tuple[str, ...], _SplitRows]:
    if split not in SPLITS:
        raise ConfigError(f"unknown Parkinsons split {split!r}; choose one of {', '.join(SPLITS)}")
    if tasks not in MODES:
        raise ConfigError(f"unknown Parkinsons tasks {tasks!r}; choose 'targets' or 'subjects'")
    if not isinstance(split_seed, int):
        raise ConfigError(f"Parkinsons split_seed must be an integer, got {split_seed!r}")
    names, splits = _build(data_root(root), split_seed, tasks)
    return names, splits[split]


def parkinsons_rows(
    split: str, root: str | os.PathLike | None = None, split_seed: int = 0, tasks: str = "targets"
) -> Tensor:
    """Indices (int64, 0-based, header excluded) of `split`'s recordings among the file's rows."""
    return torch.from_numpy(_split(split, root, split_seed, tasks)[1].rows.copy())


def parkinsons(
    split: str, root: str | os.PathLike | None = None, split_seed: int = 0, tasks: str = "targets"
) -> MultiTaskData:
    """Parkinsons `split`, x float32 [N, 18]. tasks="targets": dense y float32 [N, 2] (motor, total UPDRS),
    split by subject; tasks="subjects": partitioned total_UPDRS y [N], task [N] = subject, split per subject."""
    names, (_, x, y, task) = _split(split, root, split_seed, tasks)
    return MultiTaskData(
        names,
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(y.astype(np.float32)),
        (0,) * len(names),
        None if task is None else torch.from_numpy(task.astype(np.int64)),
    )
