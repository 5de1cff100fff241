"""Fashion-MNIST (Xiao et al., 2017): the gzip IDX files read into uint8 images and int64 labels.

The IDX header is checked (magic number, dimensions, file length) so that a wrong or damaged file is a DataError
naming the file, not a numpy reshape error. Each split is decoded once per process and kept in memory.
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from .files import fetch
from .root import data_root

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
SIZES = {"train": 60000, "test": 10000}
CLASSES = 10
_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array stored in gzip IDX file `path`, whose header must start with `magic`.

    Checks that the file is gzip, that the magic number is the expected one (the last byte of the magic is the
    number of dimensions) and that the payload holds exactly the product of the header's dimensions.
    """
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot decompress IDX file {path}: {exc}") from None
    if len(raw) < 4:
        raise DataError(f"IDX file {path} is too short ({len(raw)} bytes) to hold a header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"IDX file {path} has magic number {found:#010x}, expected {magic:#010x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path} ends inside its header ({len(raw)} bytes, header needs {header})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        raise DataError(f"IDX file {path} holds {len(raw)} bytes but its header {shape} needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


@functools.lru_cache(maxsize=4)
def load_split(split: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read-only arrays (images uint8 [N, 28, 28], labels uint8 [N]) of a split, decoded once per root."""
    if split not in SIZES:
        raise ConfigError(f"unknown Fashion-MNIST split {split!r}; choose 'train' or 'test'")
    prefix = _PREFIX[split]
    image_path = fetch(f"fashion-mnist/{prefix}-images-idx3-ubyte.gz", root)
    label_path = fetch(f"fashion-mnist/{prefix}-labels-idx1-ubyte.gz", root)
    images, labels = read_idx(image_path, IMAGES_MAGIC), read_idx(label_path, LABELS_MAGIC)
    if images.shape != (SIZES[split], 28, 28):
        raise DataError(
            f"IDX file {image_path} holds images of shape {images.shape}, expected ({SIZES[split]}, 28, 28)"
        )
    if labels.shape != (SIZES[split],):
        raise DataError(f"IDX file {label_path} holds {labels.shape} labels, expected ({SIZES[split]},)")
    if labels.max() >= CLASSES:
        raise DataError(f"IDX file {label_path} has label {labels.max()}, expected 0..{CLASSES - 1}")
    return images, labels


def fashion_mnist(split: str, root: str | os.PathLike | None = None) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST `split` ("train": 60000, "test": 10000): images uint8 [N, 28, 28], labels int64 [N]."""
    images, labels = load_split(split, data_root(root))
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
