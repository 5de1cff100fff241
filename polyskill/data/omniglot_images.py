"""Omniglot (Lake et al., 2015): 1623 characters x 20 drawings, resized once and cached as uint8.

Class sets: the Vinyals et al. (2016) split with 4 rotations per character ("vinyals/train", "vinyals/val",
"vinyals/test", "vinyals/trainval"), and the original "background" / "evaluation" alphabets.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from ..progress import progress
from .classes import ClassDataset
from .files import fetch
from .registry import FILES
from .root import cache_dir, data_root

SOURCES = ("omniglot/images_background.npz", "omniglot/images_evaluation.npz")
SPLITS = ("vinyals/train", "vinyals/val", "vinyals/test", "vinyals/trainval", "background", "evaluation")
_LINE = re.compile(r"^(?P<alphabet>[^/]+)/character(?P<n>\d+)/rot(?P<deg>000|090|180|270)$")


def _resize(images: np.ndarray, size: int, chunk: int = 2048, desc: str = "resize") -> np.ndarray:
    """[N, 105, 105] bool (True = background) -> [N, size, size] uint8 with ink = 255, antialiased."""
    out = np.empty((len(images), size, size), dtype=np.uint8)
    for start in progress(range(0, len(images), chunk), desc=desc, unit="chunk"):
        ink = 1.0 - torch.from_numpy(images[start : start + chunk]).float().unsqueeze(1)
        small = F.interpolate(ink, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + chunk] = small.squeeze(1).mul(255).round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def _read_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            images = archive["images"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read Omniglot archive {path}: {exc}") from None
    if images.ndim != 4 or images.shape[1:] != (20, 105, 105):
        raise DataError(f"Omniglot archive {path} holds images of shape {images.shape}, expected (C, 20, 105, 105)")
    return images


def _digest(images: np.ndarray) -> str:
    """SHA-256 of an array's bytes (in C order)."""
    return hashlib.sha256(np.ascontiguousarray(images).data).hexdigest()


def _read_cache(cache: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array if it is whole: readable, of the expected shape and dtype, and matching the SHA-256 stored
    beside it in the archive (so a damaged byte behind an intact header is caught); None otherwise."""
    try:
        archive = np.load(cache, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        return None
    try:
        with archive:
            images, digest = archive["images"], str(archive["sha256"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if images.dtype != np.uint8 or images.shape != shape or _digest(images) != digest:
        return None
    return images


def _write_cache(cache: Path, images: np.ndarray) -> None:
    """Store `images` with their SHA-256, atomically; a cache that cannot be written (full disk) is only slower."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".npz.part")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, images=images, sha256=np.array(_digest(images)))
        os.replace(tmp, cache)
    except OSError:
        pass
    finally:
        if tmp is not None and os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def load_all(root: str | os.PathLike | None = None, image_size: int = 28) -> np.ndarray:
    """Every character, background then evaluation: uint8 [1623, 20, size, size], ink 255, background 0.

    The resized array is cached with its SHA-256 (keyed by the source digests and size) so later loads skip
    decoding; a cache that does not match its digest is rebuilt.
    """
    paths = [fetch(name, root) for name in SOURCES]
    key = "".join(FILES[name].sha256[:8] for name in SOURCES)
    cache = cache_dir(data_root(root)) / f"omniglot-{image_size}px-{key}.npz"
    cached = _read_cache(cache, (1623, 20, image_size, image_size)) if cache.is_file() else None
    if cached is not None:
        return cached
    resized = np.concatenate(
        [
            _resize(
                _read_npz(p).reshape(-1, 105, 105), image_size, desc=f"preparing Omniglot {image_size}px ({p.name})"
            ).reshape(-1, 20, image_size, image_size)
            for p in paths
        ]
    )
    _write_cache(cache, resized)
    return resized


def alphabets(root: str | os.PathLike | None = None) -> list[dict]:
    """The alphabet table: name, split, first character id (1-based) and number of characters."""
    path = fetch("omniglot/alphabets.json", root)
    return json.loads(path.read_text())


def _parse_split(path: Path, first_id: dict[str, tuple[int, int]]) -> tuple[list[int], list[int], list[str]]:
    rows, turns, names = [], [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        match = _LINE.match(line)
        if not match:
            raise DataError(f"{path}, line {number}: expected 'Alphabet/characterNN/rotDDD', got {line!r}")
        alphabet, n = match["alphabet"], int(match["n"])
        if alphabet not in first_id or not 1 <= n <= first_id[alphabet][1]:
            raise DataError(f"{path}, line {number}: no character {n} in alphabet {alphabet!r}")
        rows.append(first_id[alphabet][0] + n - 2)
        turns.append(int(match["deg"]) // 90)
        names.append(line)
    return rows, turns, names


def omniglot(split: str = "vinyals/train", root: str | os.PathLike | None = None, image_size: int = 28) -> ClassDataset:
    """Omniglot classes of a split as a ClassDataset [classes, 20, 1, size, size] uint8."""
    if split not in SPLITS:
        raise DataError(f"unknown Omniglot split {split!r}; choose one of {', '.join(SPLITS)}")
    table = alphabets(root)
    images = torch.from_numpy(load_all(root, image_size))
    if split in ("background", "evaluation"):
        rows, turns, names = [], [], []
        for entry in table:
            if entry["split"] == split:
                for n in range(1, entry["characters"] + 1):
                    rows.append(entry["first_character_id"] + n - 2)
                    names.append(f"{entry['alphabet']}/character{n:02d}")
        turns = [0] * len(rows)
    else:
        first_id = {e["alphabet"]: (e["first_character_id"], e["characters"]) for e in table}
        rows, turns, names = _parse_split(fetch(f"omniglot/splits/{split}.txt", root), first_id)
    index, turn = torch.tensor(rows), torch.tensor(turns)
    data = images[index]
    for k in (1, 2, 3):
        mask = turn == k
        if mask.any():
            data[mask] = torch.rot90(data[mask], k, dims=(-2, -1))
    return ClassDataset(data.unsqueeze(2).contiguous(), names)
