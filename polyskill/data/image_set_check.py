"""`polyskill data verify` for the colour image sets. No digest of their extracted files is published, so a
download is checked the way it can be: every split is read in full (each image decoded, so a damaged file is
named; the decoded cache is built as a side effect) and its classes and images are counted against the sizes
the release publishes."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import DataError
from .cifar_fs import cifar_fs
from .classes import ClassDataset
from .cub import cub
from .image_sets import set_folder
from .mini_imagenet import mini_imagenet
from .registry import IMAGE_SETS
from .tiered_imagenet import tiered_imagenet

#: each colour set's loader (`polyskill data verify` reads it at the registry's image size)
LOADERS: dict[str, Callable[..., ClassDataset]] = {
    "miniimagenet": mini_imagenet,
    "tieredimagenet": tiered_imagenet,
    "cifarfs": cifar_fs,
    "cub": cub,
}


@dataclass(frozen=True)
class SetCheck:
    """The verdict on one colour set: `state` 'ok', 'differs' (readable, but not the published size), 'damaged'
    (a split could not be read) or 'missing' (no folder), and what was found or what is wrong."""

    name: str
    state: str
    detail: str

    @property
    def failed(self) -> bool:
        """True when the set is present but is not the published release."""
        return self.state in ("differs", "damaged")


def check_image_set(name: str, root: str | os.PathLike | None = None) -> SetCheck:
    """Read every split of colour set `name` and compare its class and image counts with the published ones."""
    if name not in LOADERS:
        raise DataError(f"unknown colour set {name!r}; choose one of {', '.join(LOADERS)}")
    entry = IMAGE_SETS[name]
    if not set_folder(name, root).is_dir():
        return SetCheck(name, "missing", "")
    found, problems, total = [], [], 0
    for split, classes, images in entry.sizes:
        try:
            data = LOADERS[name](split, root=root, image_size=entry.image_size)
        except DataError as exc:
            return SetCheck(name, "damaged", f"{split} split: {exc}")
        count = int(data.counts.sum())
        total += count
        found.append(f"{split} {len(data)} classes, {count} images")
        if len(data) != classes:
            problems.append(f"{split} has {len(data)} classes where the release has {classes}")
        if images is not None and count != images:
            problems.append(f"{split} has {count} images where the release has {images}")
    if entry.total_images is not None and total != entry.total_images:
        problems.append(f"{total} images in all where the release has {entry.total_images}")
    return SetCheck(name, "differs" if problems else "ok", "; ".join(problems or found))
