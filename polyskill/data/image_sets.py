"""What the few-shot colour image sets share: their folder under the data root (or one line saying where to get a
missing set and where to put it), images decoded to RGB uint8 of one size, examples grouped by class into a
ClassDataset [classes, examples, 3, H, W], and a decoded-once cache read memory-mapped."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import DataError
from .classes import ClassDataset
from .image_file import READ_ERRORS, ImageRefused, as_displayed, open_image
from .registry import IMAGE_SETS
from .root import cache_dir, data_root, root_origin

SPLITS = ("train", "val", "test")


def set_folder(name: str, root: str | os.PathLike | None) -> Path:
    """The folder of image set `name` under the data root (it may not exist)."""
    return data_root(root) / IMAGE_SETS[name].folder


def set_status(root: str | os.PathLike | None = None) -> list[tuple[str, str, str]]:
    """(state, folder, title) of every colour set for `polyskill data list`: state 'folder' when its folder is
    there (its files are checked when it is loaded: no digest of the extracted files is published), else 'missing'."""
    return [
        ("folder" if set_folder(name, root).is_dir() else "missing", f"{entry.folder}/", entry.title)
        for name, entry in IMAGE_SETS.items()
    ]


def missing_set(name: str, root: str | os.PathLike | None, looked_for: Sequence[Path]) -> DataError:
    """One line: what was looked for, where to get the set and where to put it."""
    entry = IMAGE_SETS[name]
    folder = set_folder(name, root)
    digests = "".join(f"; {archive} has {kind} {digest}" for archive, kind, digest in entry.archive_digests)
    return DataError(
        f"{entry.title} is not under the data root {data_root(root)} ({root_origin(root)}): looked for "
        f"{' and '.join(str(p) for p in looked_for)}. Download it from {' or '.join(entry.urls)}{digests}, and "
        f"place it in {folder} so that {entry.layout}; or point $POLYSKILL_DATA at a folder that has it."
    )


def check_split(split: str, title: str, splits: Sequence[str] = SPLITS) -> None:
    """DataError unless `split` is one of `splits`."""
    if split not in splits:
        raise DataError(f"unknown {title} split {split!r}; choose one of {', '.join(splits)}")


def _resample(image: Image.Image, size: int) -> np.ndarray:
    """An image as RGB uint8 [3, size, size], resized bilinearly (Pillow widens the filter when shrinking); 16-bit
    and float images are scaled to 8 bits and transparent ones laid on white, as `polyskill adapt` converts them."""
    rgb = as_displayed(image).convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def decode_file(path: Path, size: int) -> np.ndarray:
    """Image file `path` as RGB uint8 [3, size, size]; unreadable or corrupt: one DataError naming it."""
    with open_image(path) as image:
        try:
            return _resample(image, size)
        except READ_ERRORS as exc:
            raise ImageRefused(path, f"unreadable: {str(exc) or type(exc).__name__}") from None


def decode_bytes(data: bytes | np.ndarray, size: int, name: str) -> np.ndarray:
    """Encoded image bytes (a PNG in a pickle) as RGB uint8 [3, size, size]; DataError naming `name` otherwise."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else data
    if not isinstance(raw, (bytes, bytearray)):
        raise DataError(f"{name} is not encoded image bytes (got {type(data).__name__})")
    with open_image(io.BytesIO(raw), name=name) as image:
        try:
            return _resample(image, size)
        except READ_ERRORS as exc:
            raise ImageRefused(name, f"unreadable: {str(exc) or type(exc).__name__}") from None


def resize_array(images: np.ndarray, size: int, chunk: int = 1024) -> np.ndarray:
    """uint8 [N, 3, H, W] (a view is fine) -> a new uint8 [N, 3, size, size], antialiased bilinear."""
    if images.shape[2:] == (size, size):
        return np.ascontiguousarray(images)
    out = np.empty((len(images), 3, size, size), dtype=np.uint8)
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + chunk])).float()
        small = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + chunk] = small.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def integers(value: object) -> np.ndarray | None:
    """`value` (a list or array from a data file) as a non-empty 1-d integer array, or None when it is not one
    (ragged, nested, empty, floats, text)."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        return None
    return array if array.ndim == 1 and len(array) > 0 and array.dtype.kind in "iu" else None


def class_name(value: object, path: Path) -> str:
    """A class name from a pickle as text (byte strings decoded as UTF-8); DataError naming `path` otherwise."""
    if not isinstance(value, bytes):
        return str(value)
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise DataError(f"{path}: class name {value[:40]!r} is not UTF-8 text") from None


def class_names(values: Sequence[object], path: Path, field: str) -> list[str]:
    """A pickle's list of class names as text, each once; DataError naming `path` and `field` otherwise."""
    names = [class_name(value, path) for value in values]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{path}: {field} lists class {name!r} twice")
        seen.add(name)
    return names


def group(labels: Sequence[Hashable]) -> tuple[list[Hashable], list[np.ndarray]]:
    """The distinct labels in order of first appearance, and the example indices of each, in file order."""
    index: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        index.setdefault(label, []).append(i)
    return list(index), [np.asarray(rows, dtype=np.int64) for rows in index.values()]


def class_dataset(
    rows: Sequence[np.ndarray], names: Sequence[object], take: Callable[[np.ndarray], np.ndarray], size: int
) -> ClassDataset:
    """A padded ClassDataset [classes, most examples, 3, size, size]: class c holds `take(rows[c])`, its
    examples as uint8 [n, 3, size, size] (taken class by class, so the source is never copied whole)."""
    longest = max(len(r) for r in rows)
    data = np.zeros((len(rows), longest, 3, size, size), dtype=np.uint8)
    for c, r in enumerate(rows):
        data[c, : len(r)] = take(r)
    counts = torch.tensor([len(r) for r in rows])
    return ClassDataset(torch.from_numpy(data), [str(n) for n in names], counts)


def source_key(paths: Sequence[Path], *extra: object) -> str:
    """A short key naming the sources' identity (path, size, modification time) and `extra` (the image size):
    a cache built from other files is not reused. Each folder is resolved once, not each of its files (0.19
    against 0.7 s for a folder of 60,000 images), so a file's path is its folder's real path and its own name,
    the same as its real path unless the file is a link; the stat follows a link to its target."""
    digest = hashlib.sha256()
    folders: dict[str, str] = {}
    for path in paths:
        where, name = os.path.split(path)
        folder = folders.get(where)
        if folder is None:
            folder = folders[where] = os.path.realpath(where or ".")
        stat = os.stat(path)
        digest.update(f"{os.path.join(folder, name)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    digest.update(repr(extra).encode())
    return digest.hexdigest()[:16]


def cache_path(root: str | os.PathLike | None, stem: str) -> Path:
    """Where the decoded array of `stem` is cached (the writable cache folder of the data root)."""
    return cache_dir(data_root(root)) / f"{stem}.npy"


def read_cached(path: Path) -> ClassDataset | None:
    """The cached classes at `path` memory-mapped (pages are read as episodes touch them), or None when the
    cache is absent or incomplete (its record, written last, is missing or does not match the array)."""
    record = path.with_suffix(".json")
    try:
        meta = json.loads(record.read_text())
        data = np.load(path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(meta, dict) or list(data.shape) != meta.get("shape") or data.dtype != np.uint8 or data.ndim != 5:
        return None
    names, counts = meta.get("names"), meta.get("counts")
    if not (isinstance(names, list) and isinstance(counts, list) and len(names) == len(counts) == data.shape[0]):
        return None
    valid = all(isinstance(n, str) for n in names) and all(type(c) is int and 0 <= c <= data.shape[1] for c in counts)
    if not valid:
        return None
    return ClassDataset(torch.from_numpy(data), names, torch.tensor(counts, dtype=torch.long))


def write_cached(
    path: Path, names: Sequence[str], counts: Sequence[int], shape: tuple[int, ...], fill: Callable[[np.ndarray], None]
) -> ClassDataset:
    """Decode into a new uint8 array of `shape` on disk (`fill` writes it, class by class), then record it, both
    atomically: a killed decode leaves no cache that looks whole. Returns it memory-mapped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blocking = [p for p in (path, path.with_suffix(".json")) if p.is_dir()]
    if blocking:
        raise DataError(f"the cache file {blocking[0]} is a folder: remove it so that the decoded set can be cached")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        os.close(fd)
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        fill(array)
        array.flush()
        del array
        os.replace(tmp, path)
        tmp = None
        _write_record(path.with_suffix(".json"), {"shape": list(shape), "names": list(names), "counts": list(counts)})
    finally:
        if tmp is not None and os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    cached = read_cached(path)
    if cached is None:
        raise DataError(f"the decoded cache {path} could not be read back; is the disk full?")
    return cached


def _write_record(path: Path, values: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    with os.fdopen(fd, "w") as f:
        json.dump(values, f)
    os.replace(tmp, path)
