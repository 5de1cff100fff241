"""A user's own images: a folder with one sub-folder of images per class becomes a ClassDataset."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from ..progress import progress
from .classes import ClassDataset
from .image_file import READ_ERRORS, ImageRefused, as_displayed, open_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _decode(path: Path, size: tuple[int, int], mode: str) -> np.ndarray:
    """One image file as uint8 [H, W] or [H, W, 3] (16-bit and transparent images as a viewer shows them), or one
    DataError naming it (unreadable, a decompression bomb)."""
    with open_image(path) as image:
        try:
            converted = as_displayed(image).convert(mode)
            if converted.size != (size[1], size[0]):
                converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(converted, dtype=np.uint8)
        except READ_ERRORS as exc:
            raise ImageRefused(path, f"unreadable: {str(exc) or type(exc).__name__}") from None


def image_files(folder: Path) -> list[Path]:
    """The image files directly inside `folder`, sorted, hidden files skipped; a link to nowhere named like an
    image is refused (it is an image the user meant to give, which cannot be read)."""
    paths = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
    broken = [p for p in paths if p.is_symlink() and not p.exists()]
    if broken:
        raise DataError(
            f"cannot read image {broken[0]}: it is a symbolic link to a file that does not exist"
            + (f" (and {len(broken) - 1} more in {folder})" if len(broken) > 1 else "")
        )
    return [p for p in paths if p.is_file()]


def _size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    """(H, W) from one side or a pair, each a whole number of pixels >= 1 (DataError otherwise)."""
    pair = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair):
        raise DataError(f"image_size must be a number of pixels >= 1 or a pair (H, W) of them, got {image_size!r}")
    return pair[0], pair[1]


def image_folder(path: str | os.PathLike, image_size: int | tuple[int, int] = 28, channels: int = 1) -> ClassDataset:
    """Load FOLDER/<class>/<image> into a ClassDataset [classes, max examples, channels, H, W] uint8.

    Classes may have different numbers of images; `counts` records them. Every image is converted to
    `channels` (1 = grey, 3 = RGB) and resized to `image_size`.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder")
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    size = _size(image_size)
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = {c.name: image_files(c) for c in classes}
    files = {name: f for name, f in files.items() if f}
    if not files:
        raise DataError(
            f"image folder {root} has no class sub-folders with images "
            f"(expected {root}/<class>/<image>{'|'.join(sorted(IMAGE_SUFFIXES))})"
        )
    mode = "L" if channels == 1 else "RGB"
    longest = max(len(f) for f in files.values())
    data = np.zeros((len(files), longest, size[0], size[1], channels), dtype=np.uint8)
    with progress(total=sum(len(f) for f in files.values()), desc=f"reading {root.name}", unit="image") as bar:
        for c, paths in enumerate(files.values()):
            for e, p in enumerate(paths):
                data[c, e] = _decode(p, size, mode).reshape(size[0], size[1], channels)
                bar.update(1)
    counts = torch.tensor([len(f) for f in files.values()])
    return ClassDataset(torch.from_numpy(data).permute(0, 1, 4, 2, 3).contiguous(), list(files), counts)
