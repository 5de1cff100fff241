"""miniImageNet (Vinyals et al. 2016) in the Ravi & Larochelle (2017) split: 64 train, 16 validation and 20 test
classes of 600 ImageNet images each.

Two layouts under DATA_ROOT/mini-imagenet are read. The pickle release (`mini-imagenet-cache-{split}.pkl`, as
learn2learn downloads it: a dict of `image_data` uint8 [N, 84, 84, 3] and `class_dict` {class: [indices]}),
read with the restricted unpickler and kept in memory (1.27 GB for all 60000 images at 84 px). Or the csv split
(`{split}.csv` of `filename,label` rows naming JPEGs in `images/`), decoded once into a uint8 cache under the
cache folder and read memory-mapped afterwards.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..progress import progress
from .classes import ClassDataset
from .image_sets import (
    cache_path,
    check_split,
    class_dataset,
    decode_file,
    group,
    integers,
    missing_set,
    read_cached,
    resize_array,
    set_folder,
    source_key,
    write_cached,
)
from .safe_pickle import load_pickle

TITLE = "miniImageNet"


def _pickles(folder: Path, split: str) -> list[Path]:
    """The pickle names a split may have (learn2learn saves the validation split as -validation.pkl)."""
    names = [split] + (["validation"] if split == "val" else [])
    return [folder / f"mini-imagenet-cache-{name}.pkl" for name in names]


def mini_imagenet(split: str = "train", root: str | os.PathLike | None = None, image_size: int = 84) -> ClassDataset:
    """The classes of split `train`, `val` or `test` as a ClassDataset [classes, 600, 3, size, size] uint8."""
    check_split(split, TITLE)
    folder = set_folder("miniimagenet", root)
    pickles = _pickles(folder, split)
    for path in pickles:
        if path.is_file():
            return from_pickle(path, image_size)
    table = folder / f"{split}.csv"
    if table.is_file():
        return from_csv(table, folder / "images", image_size, root)
    raise missing_set("miniimagenet", root, [pickles[0], table])


def from_pickle(path: Path, image_size: int) -> ClassDataset:
    """A `mini-imagenet-cache-*.pkl` file's classes, in the order of its `class_dict`."""
    content = load_pickle(path)
    if not isinstance(content, dict) or not {"image_data", "class_dict"} <= set(content):
        keys = sorted(map(str, content)) if isinstance(content, dict) else type(content).__name__
        raise DataError(
            f"{path} is not a miniImageNet pickle: expected a dict of image_data and class_dict, got {keys}"
        )
    images, classes = content["image_data"], content["class_dict"]
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[3] != 3
        or 0 in images.shape[1:3]
    ):
        shape = getattr(images, "shape", type(images).__name__)
        raise DataError(f"{path}: image_data must be uint8 [N, H, W, 3], got {shape} {getattr(images, 'dtype', '')}")
    if not isinstance(classes, dict) or not classes:
        raise DataError(f"{path}: class_dict must be a non-empty dict of class -> image indices")
    rows = [_indices(path, name, value, len(images)) for name, value in classes.items()]
    listed, times = np.unique(np.concatenate(rows), return_counts=True)
    if (times > 1).any():
        raise DataError(
            f"{path}: class_dict lists image {listed[times > 1][0]} more than once (a task could hold it twice)"
        )
    channels_first = images.transpose(0, 3, 1, 2)
    return class_dataset(rows, list(classes), lambda r: resize_array(channels_first[r], image_size), image_size)


def _indices(path: Path, name: object, value: object, count: int) -> np.ndarray:
    """A class's image indices as int64, each below `count`; DataError naming the file and class otherwise."""
    rows = integers(value)
    if rows is None or rows.min() < 0 or rows.max() >= count:
        raise DataError(f"{path}: class {name!s} must list image indices in [0, {count}), got {str(value)[:80]}")
    return rows.astype(np.int64)


def from_csv(table: Path, images: Path, image_size: int, root: str | os.PathLike | None) -> ClassDataset:
    """A Ravi & Larochelle csv split over its folder of JPEGs, classes in order of first appearance."""
    files, labels = _read_csv(table, images)
    names, rows = group(labels)
    key = source_key([table, *files], image_size)  # a changed image is decoded again, not read stale from the cache
    cache = cache_path(root, f"miniimagenet-{table.stem}-{image_size}px-{key}")
    cached = read_cached(cache)
    if cached is not None:
        return cached
    counts = [len(r) for r in rows]

    def fill(array: np.ndarray) -> None:
        with progress(total=len(files), desc=f"decoding miniImageNet {table.stem}", unit="image") as bar:
            for c, r in enumerate(rows):
                for e, i in enumerate(r):
                    array[c, e] = decode_file(files[i], image_size)
                    bar.update(1)

    shape = (len(rows), max(counts), 3, image_size, image_size)
    return write_cached(cache, [str(n) for n in names], counts, shape, fill)


def _read_csv(table: Path, images: Path) -> tuple[list[Path], list[str]]:
    """The image paths and labels of a `filename,label` csv; a malformed row or a missing image is a DataError
    naming the csv and its line."""
    try:
        with open(table, newline="", encoding="utf-8-sig") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {table}: {exc}") from None
    if not lines or [c.strip() for c in lines[0]] != ["filename", "label"]:
        raise DataError(f"{table}: the first line must be the header 'filename,label'")
    files, labels = [], []
    seen: dict[Path, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        if len(line) != 2 or not line[0].strip() or not line[1].strip():
            raise DataError(f"{table}, line {number}: expected 'filename,label', got {','.join(line)[:80]!r}")
        path = images / line[0].strip()
        if not path.is_file():
            raise DataError(f"{table}, line {number}: image {path} does not exist")
        if path in seen:
            raise DataError(f"{table}, line {number}: image {line[0].strip()} is listed again (line {seen[path]})")
        seen[path] = number
        files.append(path)
        labels.append(line[1].strip())
    if not files:
        raise DataError(f"{table} lists no images")
    return files, labels
