"""tieredImageNet (Ren et al. 2018): 608 ImageNet classes under 34 categories, 351 train / 97 validation / 160 test
classes, 779,165 images, in the release of github.com/renmengye/few-shot-ssl-public under DATA_ROOT/tiered-imagenet.

`{split}_labels.pkl` holds `label_specific` (each image's class), `label_specific_str` (class names) and the
categories (`label_general`, `label_general_str`); the images are `{split}_images_png.pkl` (a list of PNG-encoded
84x84 images) or the decompressed `{split}_images.npz` (`images` uint8 [N, 84, 84, 3]). At 84 px the set is 16.5 GB
of pixels, too much to hold beside training, so each split is decoded once, class by class, into a uint8 .npy
under the cache folder and read memory-mapped: episodes read only the pages of the images they draw.
"""

from __future__ import annotations

import functools
import os
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..progress import progress
from .classes import ClassDataset
from .image_file import MAX_PIXELS
from .image_sets import (
    cache_path,
    check_split,
    class_names,
    decode_bytes,
    integers,
    missing_set,
    read_cached,
    resize_array,
    set_folder,
    source_key,
    write_cached,
)
from .safe_pickle import load_pickle

TITLE = "tieredImageNet"
#: what a damaged npz raises while its images.npy is read (a bad CRC, a broken deflate stream, a cut-off file)
_NPZ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)


def tiered_imagenet(split: str = "train", root: str | os.PathLike | None = None, image_size: int = 84) -> ClassDataset:
    """The classes of split `train`, `val` or `test` as a memory-mapped ClassDataset [classes, most images, 3,
    size, size] uint8 (classes hold 732 to 1300 images; `counts` says how many)."""
    check_split(split, TITLE)
    folder = set_folder("tieredimagenet", root)
    labels_path = folder / f"{split}_labels.pkl"
    png, npz = folder / f"{split}_images_png.pkl", folder / f"{split}_images.npz"
    images_path = png if png.is_file() else npz
    if not labels_path.is_file() or not images_path.is_file():
        raise missing_set("tieredimagenet", root, [p for p in (labels_path, png) if not p.is_file()])
    key = source_key([labels_path, images_path], image_size)
    cache = cache_path(root, f"tieredimagenet-{split}-{image_size}px-{key}")
    cached = read_cached(cache)
    if cached is not None:
        return cached
    labels, names = _labels(labels_path)
    counts = np.bincount(labels, minlength=len(names))
    if (counts == 0).any():
        raise DataError(f"{labels_path}: class {names[int(np.argmin(counts))]} has no images")
    slots = _slots(labels, len(names))

    def fill(array: np.ndarray) -> None:
        images = _png_images(images_path) if images_path == png else _npz_images(images_path)
        count = 0
        with progress(total=len(labels), desc=f"decoding tieredImageNet {split}", unit="image") as bar:
            for i, image in enumerate(images):
                if i >= len(labels):
                    raise DataError(f"{images_path} holds more images than the {len(labels)} {labels_path} labels")
                array[labels[i], slots[i]] = image(image_size)
                count += 1
                bar.update(1)
        if count != len(labels):
            raise DataError(f"{images_path} holds {count} images but {labels_path} labels {len(labels)}")

    shape = (len(names), int(counts.max()), 3, image_size, image_size)
    return write_cached(cache, names, counts.tolist(), shape, fill)


def _field(content: dict, name: str) -> Any:
    """`content[name]`, whether the pickle's keys are text or Python 2 byte strings."""
    return content[name] if name in content else content.get(name.encode())


def _labels(path: Path) -> tuple[np.ndarray, list[str]]:
    """Each image's class index and the class names of a `{split}_labels.pkl`."""
    content = load_pickle(path)
    specific = _field(content, "label_specific") if isinstance(content, dict) else None
    if specific is None:
        raise DataError(f"{path} is not a tieredImageNet labels pickle: it has no label_specific")
    labels = integers(specific)
    if labels is None or labels.min() < 0:
        raise DataError(f"{path}: label_specific must be class indices >= 0 [N], got {str(specific)[:80]}")
    if labels.max() >= len(labels):
        raise DataError(
            f"{path}: label_specific names class {labels.max()} among only {len(labels)} images, so some class has none"
        )
    strings = _field(content, "label_specific_str")
    if strings is None:
        names = [str(c) for c in range(int(labels.max()) + 1)]
    else:
        if not isinstance(strings, (list, tuple, np.ndarray)):
            raise DataError(f"{path}: label_specific_str must be a list of class names, got {type(strings).__name__}")
        names = class_names(list(strings), path, "label_specific_str")
        if len(names) <= labels.max():
            raise DataError(
                f"{path}: label_specific names class {labels.max()} but label_specific_str has {len(names)}"
            )
    return labels.astype(np.int64), names


def _slots(labels: np.ndarray, classes: int) -> np.ndarray:
    """Each image's position within its class: images keep their file order inside a class."""
    slots = np.empty(len(labels), dtype=np.int64)
    seen = np.zeros(classes, dtype=np.int64)
    for i, label in enumerate(labels):
        slots[i] = seen[label]
        seen[label] += 1
    return slots


Decoder = Callable[[int], np.ndarray]


def _png_images(path: Path) -> Iterator[Decoder]:
    """Decoders of the PNG-encoded images of a `{split}_images_png.pkl`, in file order."""
    content = load_pickle(path)
    if not isinstance(content, (list, tuple)):
        raise DataError(f"{path} is not a tieredImageNet image pickle: expected a list of PNG images")
    for i, encoded in enumerate(content):
        yield functools.partial(_decode_png, encoded, f"{path} (image {i})")


def _decode_png(encoded: bytes | np.ndarray, name: str, size: int) -> np.ndarray:
    return decode_bytes(encoded, size, name)


def _resized(image: np.ndarray, size: int) -> np.ndarray:
    return resize_array(image[None], size)[0]


def _npz_images(path: Path) -> Iterator[Decoder]:
    """Decoders of the images of a `{split}_images.npz`, streamed from the archive one image at a time."""
    try:
        archive = zipfile.ZipFile(path)
        member = archive.open("images.npy")
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path}: not an npz holding images.npy ({exc})") from None
    with archive, member:
        try:
            version = np.lib.format.read_magic(member)
            header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in header:
                raise ValueError(f"npy format version {version} is not read here")
            shape, fortran, dtype = header[version](member)
        except (*_NPZ_ERRORS, SyntaxError, tokenize.TokenError) as exc:
            reason = str(exc).splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
            raise DataError(f"cannot read {path}: the header of its images.npy is damaged ({reason})") from None
        if fortran or dtype != np.uint8 or len(shape) != 4 or shape[3] != 3 or 0 in shape[1:3]:
            raise DataError(f"{path}: images must be uint8 [N, H, W, 3] in C order, got {shape} {dtype}")
        if shape[1] * shape[2] > MAX_PIXELS:
            raise DataError(f"{path}: its images declare {shape[1]}x{shape[2]} pixels, more than {MAX_PIXELS} allowed")
        size = int(np.prod(shape[1:]))
        for i in range(shape[0]):
            try:
                raw = member.read(size)
            except _NPZ_ERRORS as exc:
                raise DataError(f"cannot read {path}: image {i} of {shape[0]} is damaged ({exc})") from None
            if len(raw) != size:
                raise DataError(f"{path} is truncated: image {i} of {shape[0]} is incomplete")
            yield functools.partial(_resized, np.frombuffer(raw, dtype=np.uint8).reshape(shape[1:]).transpose(2, 0, 1))
