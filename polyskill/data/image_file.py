"""Opening an image file a user gave: every way it can fail (not an image, truncated, a decompression bomb that
declares more pixels than any training image has) is one DataError naming the file, never a Pillow exception
or a machine brought down by the memory a declared 30000x30000 image would take."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import DataError

MAX_PIXELS = 89_478_485  # Pillow's default bomb limit (~0.25 GB as RGB), kept whatever Image.MAX_IMAGE_PIXELS is
READ_ERRORS = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    TypeError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


class ImageRefused(DataError):
    """An image file that cannot be used; `path` and `reason` let a caller list several in one message."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"cannot use image {path}: {reason}")
        self.path, self.reason = Path(path), reason


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextmanager
def open_image(path: str | os.PathLike) -> Iterator[Image.Image]:
    """The decoded image in `path`, open for the body of the `with`; ImageRefused if it is unreadable or declares
    more than MAX_PIXELS pixels (checked from its header, before anything is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRefused(path, f"it declares more than {MAX_PIXELS} pixels (a decompression bomb?)") from None
    except READ_ERRORS as exc:
        raise ImageRefused(path, f"unreadable: {_reason(exc)}") from None
    with image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageRefused(
                path, f"it declares {width}x{height} pixels, more than the {MAX_PIXELS} allowed (a decompression bomb?)"
            )
        try:
            image.load()
        except READ_ERRORS as exc:
            raise ImageRefused(path, f"unreadable: {_reason(exc)}") from None
        yield image
