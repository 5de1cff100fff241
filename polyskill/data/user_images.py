"""A user's own images turned into what a trained model takes: mode, size, and the polarity it was trained on.

Omniglot stores ink as the bright value on a dark background, while a scan or a drawing of a character is
dark ink on light paper; a model trained on one polarity sees the other as noise. `InputFormat` records the
convention of a run's training data, and `convert` brings any image to it. All the bad files of a folder are
gathered and reported together, so a user fixes them in one pass; nothing in a folder is skipped silently (a
link to nothing, a folder inside a class folder, a pipe are listed with the unreadable images).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from ..errors import DataError
from .folder import IMAGE_SUFFIXES
from .image_file import MAX_PIXELS, READ_ERRORS, ImageRefused, as_displayed, open_image

INVERT = ("auto", "yes", "no")
MAX_PADDED = 4096 * 4096  # the largest canvas an image is padded onto before resizing
IGNORED_FILES = {"thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class InputFormat:
    """The images a model was trained on: `channels` (1 grey, 3 RGB), `size` (H, W), whether the foreground
    is the bright value on a dark background (`bright_foreground`, Omniglot's convention), and whether
    images were padded to the aspect ratio before resizing (`keep_aspect`) or stretched (a folder's loader)."""

    channels: int = 1
    size: tuple[int, int] = (28, 28)
    bright_foreground: bool = False
    keep_aspect: bool = False


def _border_level(grey: np.ndarray) -> float:
    """Median brightness (0..255) of the outermost rows and columns: the background of a centred object."""
    edges = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return float(np.median(edges))


def _should_invert(grey: np.ndarray, fmt: InputFormat, invert: str) -> bool:
    if invert == "yes":
        return True
    if invert == "no" or not fmt.bright_foreground:
        return False
    return _border_level(grey) > 127.5  # light background: dark ink, the opposite of what the model saw


def _pad_to(image: Image.Image, aspect: float, fill: tuple[int, ...] | int) -> Image.Image:
    """Pad with the background colour to width/height = `aspect`, so resizing keeps the object's shape. An image
    so elongated that the padded canvas would exceed MAX_PADDED pixels (a 1 x 2,000,000 strip pads to 4e12) is
    shrunk first, keeping its aspect, so the canvas stays within it."""
    width, height = image.size
    target_w, target_h = max(width, round(height * aspect)), max(height, round(width / aspect))
    if target_w * target_h > MAX_PADDED:
        scale = math.sqrt(MAX_PADDED / (target_w * target_h))
        width, height = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
        image = image.resize((width, height), Image.Resampling.BILINEAR)
        target_w, target_h = max(width, round(height * aspect)), max(height, round(width / aspect))
    if (target_w, target_h) == (width, height):
        return image
    canvas = Image.new(image.mode, (target_w, target_h), fill)
    canvas.paste(image, ((target_w - width) // 2, (target_h - height) // 2))
    return canvas


def convert(image: Image.Image, fmt: InputFormat, invert: str = "auto") -> Tensor:
    """One PIL image -> float [channels, H, W] in [0, 1], in the model's mode, size and polarity.

    With `fmt.keep_aspect`, images are padded to the model's aspect ratio with their border colour before
    resizing (no distortion); otherwise stretched, as the folder loader does. EXIF rotation is applied; `invert`
    is 'auto' (invert when the model saw bright foregrounds and this image has a light background), 'yes' or 'no'.
    """
    if invert not in INVERT:
        raise DataError(f"invert must be one of {', '.join(INVERT)}, got {invert!r}")
    if image.width * image.height > MAX_PIXELS or min(image.size) < 1:
        raise DataError(
            f"an image of {image.width}x{image.height} pixels cannot be used (at least 1 and at most "
            f"{MAX_PIXELS} pixels)"
        )
    image = as_displayed(ImageOps.exif_transpose(image))
    image = image.convert("L" if fmt.channels == 1 else "RGB")
    pixels = np.asarray(image)
    grey = pixels if pixels.ndim == 2 else pixels.mean(-1)
    flip = _should_invert(grey, fmt, invert)
    level = (
        round(_border_level(grey))
        if fmt.channels == 1
        else tuple(
            int(np.median(np.concatenate([pixels[0, :, c], pixels[-1, :, c], pixels[:, 0, c], pixels[:, -1, c]])))
            for c in range(3)
        )
    )
    if fmt.keep_aspect:
        image = _pad_to(image, fmt.size[1] / fmt.size[0], level)
    if image.size != (fmt.size[1], fmt.size[0]):
        image = image.resize((fmt.size[1], fmt.size[0]), Image.Resampling.BILINEAR)  # antialiased when shrinking
    array = np.asarray(image, dtype=np.float32) / 255.0
    if flip:
        array = 1.0 - array
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


def _ignored(path: Path) -> bool:
    """Hidden files and folders and operating systems' index files: not the user's data."""
    return path.name.startswith(".") or path.name.lower() in IGNORED_FILES


def scan(folder: Path, nested: bool) -> tuple[list[Path], list[str]]:
    """The files a user put in `folder` (with `nested`, in its sub-folders too), sorted, and 'path (reason)' for
    every entry that cannot be used: a link to nothing, a folder where only images belong (without `nested`), a
    link to a folder, a pipe or device (reading one would wait forever)."""
    files, bad = [], []
    for path in sorted(folder.iterdir()):
        if _ignored(path):
            continue
        if path.is_symlink() and not path.exists():
            bad.append(f"{path} (a symbolic link to a file that does not exist)")
        elif path.is_dir() and not nested:
            bad.append(f"{path} (a folder inside a class folder: its images would not be used)")
        elif path.is_dir() and path.is_symlink():
            bad.append(f"{path} (a link to a folder: give the folder itself)")
        elif path.is_dir():
            inner, problems = scan(path, nested)
            files += inner
            bad += problems
        elif path.is_file():
            files.append(path)
        else:
            bad.append(f"{path} (not a regular file)")
    return sorted(files), bad


def load_images(paths: Iterable[Path], fmt: InputFormat, invert: str = "auto") -> tuple[Tensor, list[str]]:
    """Read and convert every path: ([n, C, H, W] of the good ones, 'path (reason)' for each bad one)."""
    images, bad = [], []
    for path in paths:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            bad.append(f"{path} (not an image file: {path.suffix or 'no extension'})")
            continue
        try:
            with open_image(path) as image:
                images.append(convert(image, fmt, invert))
        except ImageRefused as exc:
            bad.append(f"{path} ({exc.reason})")
        except READ_ERRORS as exc:
            bad.append(f"{path} (unreadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
        except DataError as exc:
            bad.append(f"{path} ({exc})")
    shape = (0, fmt.channels, *fmt.size)
    return (torch.stack(images) if images else torch.empty(shape)), bad


def _report(bad: list[str], what: str) -> DataError:
    """One error listing every bad file (the first 20, then a count), on one line."""
    listed = "; ".join(bad[:20]) + (f"; ... and {len(bad) - 20} more" if len(bad) > 20 else "")
    return DataError(f"{len(bad)} file(s) in the {what} cannot be used: {listed}")


def read_support(folder: str | os.PathLike, fmt: InputFormat, invert: str = "auto") -> tuple[Tensor, Tensor, list[str]]:
    """FOLDER/<class>/<image> -> (x [S, C, H, W], labels [S] in 0..N-1, class names sorted).

    Refused with one message: a missing folder, no class folders, empty class folders, files outside
    class folders, and unreadable or non-image files (all listed).
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"support folder {root} does not exist or is not a folder")
    entries = [p for p in sorted(root.iterdir()) if not _ignored(p)]
    classes = [p for p in entries if p.is_dir()]
    if not classes:
        raise DataError(
            f"support folder {root} has no class sub-folders: put each class's images in {root}/<class name>/"
        )
    stray = [p for p in entries if not p.is_dir()]
    if stray:
        raise _report([f"{p} (outside the class sub-folders)" for p in stray], f"support folder {root}")
    files, bad = {}, []
    for folder in classes:
        files[folder.name], problems = scan(folder, nested=False)
        bad += problems
    if bad:
        raise _report(bad, f"support folder {root}")
    empty = [name for name, paths in files.items() if not paths]
    if empty:
        raise DataError(f"class folder(s) with no images in {root}: {', '.join(empty)}")
    xs, labels = [], []
    for label, paths in enumerate(files.values()):
        x, problems = load_images(paths, fmt, invert)
        bad += problems
        xs.append(x)
        labels += [label] * len(x)
    if bad:
        raise _report(bad, f"support folder {root}")
    return torch.cat(xs), torch.tensor(labels, dtype=torch.long), list(files)


def read_query(folder: str | os.PathLike, fmt: InputFormat, invert: str = "auto") -> tuple[Tensor, list[str]]:
    """Every image under FOLDER (sub-folders included) -> (x [M, C, H, W], paths relative to FOLDER)."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"query folder {root} does not exist or is not a folder")
    paths, problems = scan(root, nested=True)
    if not paths and not problems:
        raise DataError(f"query folder {root} holds no images to label")
    x, bad = load_images(paths, fmt, invert)
    bad = problems + bad
    if bad:
        raise _report(bad, f"query folder {root}")
    return x, [str(p.relative_to(root)) for p in paths]
