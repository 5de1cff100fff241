"""CUB-200-2011 (Wah et al. 2011): 11,788 photographs of 200 bird species, in the few-shot class split of Chen et
al. (2019, "A Closer Look at Few-shot Classification"): with classes numbered 0..199 in classes.txt order, class i
is train when i % 2 == 0 (100 classes), validation when i % 4 == 1 (50) and test when i % 4 == 3 (50).

Read from DATA_ROOT/cub/CUB_200_2011 as the archive extracts it (`images/<class>/*.jpg`, `images.txt`,
`image_class_labels.txt`, `classes.txt`); each split's images (41 to 60 a class) are decoded once into a uint8
cache under the cache folder and read memory-mapped afterwards.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..progress import progress
from .classes import ClassDataset
from .image_sets import (
    cache_path,
    check_split,
    decode_file,
    missing_set,
    read_cached,
    set_folder,
    source_key,
    write_cached,
)

TITLE = "CUB-200-2011"
#: which class indices (0-based, classes.txt order) each split takes: Chen et al. (2019)
SPLIT_RULE = {"train": (2, 0), "val": (4, 1), "test": (4, 3)}


def split_classes(split: str, classes: int = 200) -> list[int]:
    """The 0-based class indices of `split` under Chen et al.'s rule."""
    modulus, remainder = SPLIT_RULE[split]
    return [i for i in range(classes) if i % modulus == remainder]


def cub(split: str = "train", root: str | os.PathLike | None = None, image_size: int = 84) -> ClassDataset:
    """The classes of split `train`, `val` or `test` as a memory-mapped ClassDataset [classes, most images, 3,
    size, size] uint8 (`counts` says how many images each class has)."""
    check_split(split, TITLE)
    base = set_folder("cub", root) / "CUB_200_2011"
    tables = [base / name for name in ("classes.txt", "images.txt", "image_class_labels.txt")]
    missing = [p for p in [*tables, base / "images"] if not p.exists()]
    if missing:
        raise missing_set("cub", root, missing)
    classes = _table(tables[0])
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise DataError(f"{tables[0]} must number its classes 1..{len(classes)}")
    names = [classes[i] for i in range(1, len(classes) + 1)]
    images, labels = _table(tables[1]), _table(tables[2])
    if set(images) != set(labels):
        raise DataError(f"{tables[1]} and {tables[2]} list different image ids")
    repeated = [path for path, times in Counter(images.values()).items() if times > 1]
    if repeated:
        raise DataError(f"{tables[1]} lists image {repeated[0]} more than once (a task could hold it twice)")
    by_class: dict[int, list[Path]] = {}
    for image_id, path in images.items():
        label = _number(labels[image_id], tables[2], image_id)
        if not 1 <= label <= len(names):
            raise DataError(f"{tables[2]}: image {image_id} has class {label}, not one of 1..{len(names)}")
        by_class.setdefault(label - 1, []).append(base / "images" / path)
    chosen = split_classes(split, len(names))
    files = [by_class.get(c, []) for c in chosen]
    empty = [names[c] for c, f in zip(chosen, files, strict=True) if not f]
    if empty:
        raise DataError(f"{tables[2]} gives class {empty[0]} no images")
    absent = next((path for paths in files for path in paths if not path.is_file()), None)
    if absent is not None:
        raise DataError(f"{tables[1]} lists {absent}, which does not exist")
    listed = [path for paths in files for path in paths]
    # keyed by the split's images too: a changed image is decoded again, not read stale from the cache
    cache = cache_path(root, f"cub-{split}-{image_size}px-{source_key([*tables, *listed], image_size)}")
    cached = read_cached(cache)
    if cached is not None:
        return cached
    counts = [len(f) for f in files]

    def fill(array: np.ndarray) -> None:
        with progress(total=sum(counts), desc=f"decoding CUB {split}", unit="image") as bar:
            for c, paths in enumerate(files):
                for e, path in enumerate(paths):
                    array[c, e] = decode_file(path, image_size)
                    bar.update(1)

    shape = (len(chosen), max(counts), 3, image_size, image_size)
    return write_cached(cache, [names[c] for c in chosen], counts, shape, fill)


def _table(path: Path) -> dict[int, str]:
    """A CUB index file of `<id> <value>` lines, ids in file order; a malformed line is a DataError naming it."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    table: dict[int, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdecimal():
            raise DataError(f"{path}, line {number}: expected '<id> <value>', got {line[:80]!r}")
        if int(parts[0]) in table:
            raise DataError(f"{path}, line {number}: id {parts[0]} appears twice")
        table[int(parts[0])] = parts[1].strip()
    if not table:
        raise DataError(f"{path} is empty")
    return table


def _number(value: str, path: Path, image_id: int) -> int:
    if not value.isdecimal():
        raise DataError(f"{path}: image {image_id} has class {value!r}, not a number")
    return int(value)
