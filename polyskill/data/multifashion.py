"""MultiFashion: two overlapping Fashion-MNIST items per image, one classification task for each.

The MultiMNIST construction of Sabour et al. (2017) as used for multi-task learning by Sener & Koltun (2018),
applied to Fashion-MNIST: on a 36x36 black canvas the left item fills rows/columns 0..27, the right item is pasted
at offset (8, 8) and the two are merged by pixelwise maximum; the canvas is then resized to 28x28 (antialiased
bilinear). Tasks "left" and "right" are the two items' classes.

Every source image is the left item of exactly one composite; its right partner is another image of the same
source set, drawn at random. Train and validation composites come from disjoint parts of the Fashion-MNIST
training set (left and right items alike), test composites from its test set. The uint8 composites of a
(root, seed, val_size) are built once per process, in vectorised chunks.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from .fashion_mnist import CLASSES, SIZES, load_split
from .multitask import MultiTaskData
from .root import data_root

TASKS = ("left", "right")
CANVAS = 36
OFFSET = 8
SIZE = 28
SPLITS = ("train", "val", "test")
_CHUNK = 8192
_STREAMS = {"select": 0, "train": 1, "val": 2, "test": 3}


def _generator(seed: int, stream: str) -> torch.Generator:
    """An independent generator per (seed, purpose), so the test pairs do not depend on `val_size`."""
    state = np.random.SeedSequence([seed, _STREAMS[stream]]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & 0x7FFFFFFFFFFFFFFF)


def _check(split: str, seed: int, val_size: int) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown MultiFashion split {split!r}; choose one of {', '.join(SPLITS)}")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"MultiFashion seed must be a non-negative integer, got {seed!r}")
    if not isinstance(val_size, int) or not 2 <= val_size <= SIZES["train"] - 2:
        raise ConfigError(f"MultiFashion val_size must be an integer in 2..{SIZES['train'] - 2}, got {val_size!r}")


def _partners(pool: Tensor, generator: torch.Generator) -> Tensor:
    """A random partner from `pool` for each element of `pool`, never the element itself."""
    n = len(pool)
    shift = torch.randint(1, n, (n,), generator=generator)
    return pool[(torch.arange(n) + shift) % n]


def multifashion_pairs(split: str, seed: int = 0, val_size: int = 10000) -> tuple[Tensor, Tensor]:
    """(left, right) int64 indices into the Fashion-MNIST source set of `split`'s composites.

    The source set is Fashion-MNIST "train" for the "train" and "val" splits and "test" for "test". Composite i
    of the split shows source image left[i] at the top-left and right[i] at the bottom-right.
    """
    _check(split, seed, val_size)
    if split == "test":
        pool = torch.arange(SIZES["test"])
    else:
        order = torch.randperm(SIZES["train"], generator=_generator(seed, "select"))
        chosen = order[:val_size] if split == "val" else order[val_size:]
        pool = chosen.sort().values
    return pool, _partners(pool, _generator(seed, split))


def compose(left: Tensor, right: Tensor) -> Tensor:
    """Composites uint8 [N, 28, 28] of uint8 items `left` and `right` [N, 28, 28], built in chunks."""
    out = torch.empty((len(left), SIZE, SIZE), dtype=torch.uint8)
    for start in range(0, len(left), _CHUNK):
        a, b = left[start : start + _CHUNK], right[start : start + _CHUNK]
        canvas = torch.zeros((len(a), CANVAS, CANVAS), dtype=torch.uint8)
        canvas[:, :SIZE, :SIZE] = a
        canvas[:, OFFSET:, OFFSET:] = torch.maximum(canvas[:, OFFSET:, OFFSET:], b)
        small = F.interpolate(
            canvas.unsqueeze(1).float(), size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False
        )
        out[start : start + _CHUNK] = small.squeeze(1).round().clamp(0, 255).to(torch.uint8)
    return out


@functools.lru_cache(maxsize=6)
def _build(split: str, root: Path, seed: int, val_size: int) -> tuple[Tensor, Tensor]:
    """uint8 composites [N, 28, 28] and int64 labels [N, 2] of one split (cached; not to be modified)."""
    images, labels = load_split("test" if split == "test" else "train", root)
    left, right = (index.numpy() for index in multifashion_pairs(split, seed, val_size))
    y = torch.from_numpy(np.stack([labels[left], labels[right]], axis=1).astype(np.int64))
    return compose(torch.from_numpy(images[left]), torch.from_numpy(images[right])), y


def multifashion(
    split: str, root: str | os.PathLike | None = None, seed: int = 0, val_size: int = 10000
) -> MultiTaskData:
    """MultiFashion `split` ("train" | "val" | "test"): x float32 [N, 1, 28, 28] in [0, 1], dense y int64 [N, 2].

    Sizes: train 60000 - val_size, val val_size, test 10000. Deterministic for a given `seed`.
    """
    _check(split, seed, val_size)
    composites, labels = _build(split, data_root(root), seed, val_size)
    x = composites.unsqueeze(1).float().div_(255)
    return MultiTaskData(TASKS, x, labels.clone(), (CLASSES, CLASSES))
