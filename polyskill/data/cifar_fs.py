"""CIFAR-FS (Bertinetto et al. 2019): the 100 CIFAR-100 classes split 64 / 16 / 20, each class all 600 of its
32x32 images (CIFAR-100's 500 training and 100 test images together).

Read from DATA_ROOT/cifar-fs: the CIFAR-100 python release (`cifar-100-python/train`, `test` and `meta`, Python 2
pickles read with the restricted unpickler) and the split's class names (`splits/bertinetto/{split}.txt`, one
fine-label name a line, as in the CIFAR-FS release).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .classes import ClassDataset
from .image_sets import check_split, class_dataset, class_names, integers, missing_set, resize_array, set_folder
from .safe_pickle import load_pickle

TITLE = "CIFAR-FS"


def cifar_fs(split: str = "train", root: str | os.PathLike | None = None, image_size: int = 32) -> ClassDataset:
    """The classes of split `train`, `val` or `test`, in the split file's order, as a ClassDataset [classes, 600,
    3, size, size] uint8."""
    check_split(split, TITLE)
    folder = set_folder("cifarfs", root)
    release = folder / "cifar-100-python"
    split_file = folder / "splits" / "bertinetto" / f"{split}.txt"
    needed = [release / "meta", release / "train", release / "test", split_file]
    missing = [p for p in needed if not p.is_file()]
    if missing:
        raise missing_set("cifarfs", root, missing)
    label_names = _fine_label_names(release / "meta")
    parts = [_images(release / name, len(label_names)) for name in ("train", "test")]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    wanted = _split_classes(split_file, label_names)
    rows = [np.flatnonzero(labels == label_names.index(name)) for name in wanted]
    empty = [name for name, r in zip(wanted, rows, strict=True) if len(r) == 0]
    if empty:
        raise DataError(f"{release} has no images of class {empty[0]} that {split_file} names")
    return class_dataset(rows, wanted, lambda r: resize_array(images[r], image_size), image_size)


def _field(content: Any, name: str, path: Path) -> Any:
    """`content[name]` of a CIFAR pickle (keys are text or, read as bytes, byte strings); DataError if absent."""
    if isinstance(content, dict):
        for key in (name, name.encode()):
            if key in content:
                return content[key]
    raise DataError(f"{path} is not a CIFAR-100 python pickle: it has no {name!r}")


def _fine_label_names(path: Path) -> list[str]:
    names = _field(load_pickle(path), "fine_label_names", path)
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"{path}: fine_label_names must be a list of class names")
    return class_names(names, path, "fine_label_names")


def _images(path: Path, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-100 batch file as uint8 images [N, 3, 32, 32] and fine labels [N]."""
    content = load_pickle(path)
    data, labels = _field(content, "data", path), integers(_field(content, "fine_labels", path))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: data must be uint8 [N, 3072], got {getattr(data, 'shape', type(data).__name__)}")
    if len(data) == 0:
        raise DataError(f"{path} holds no images")
    if labels is None or labels.shape != (len(data),) or labels.min() < 0 or labels.max() >= classes:
        raise DataError(f"{path}: fine_labels must be {len(data)} class indices below {classes}")
    return data.reshape(-1, 3, 32, 32), labels


def _split_classes(path: Path, label_names: list[str]) -> list[str]:
    """The class names of a split file; an unknown or repeated name is a DataError naming the file and line."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    known, names = set(label_names), []
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name:
            continue
        if name not in known:
            raise DataError(f"{path}, line {number}: {name!r} is not a CIFAR-100 class")
        if name in names:
            raise DataError(f"{path}, line {number}: class {name!r} is listed twice")
        names.append(name)
    if not names:
        raise DataError(f"{path} names no classes")
    return names
