"""Opening an image file a user gave: every way it can fail (not an image, truncated, a decompression bomb that
declares more pixels than any training image has) is one DataError naming the file, never a Pillow exception
or a machine brought down by the memory a declared 30000x30000 image would take."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
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


class ImageTooLarge(ImageRefused):
    """An image whose header declares more pixels than allowed."""


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


#: the formats a user's image may be in (Pillow identifies them from the content, whatever the name says); others
#: Pillow knows, EPS first (decoded by running Ghostscript), are refused
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")


@contextmanager
def open_image(
    source: str | os.PathLike | BinaryIO, max_pixels: int = MAX_PIXELS, name: str | os.PathLike | None = None
) -> Iterator[Image.Image]:
    """The decoded image in `source` (a path or a binary file object), open for the body of the `with`;
    ImageRefused (naming `name`, default the path) if it is unreadable, not in one of FORMATS, or declares more
    than `max_pixels` pixels (checked from its header, before anything is decoded)."""
    label = name if name is not None else source if isinstance(source, (str, os.PathLike)) else "<upload>"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source, formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(
            label, f"it declares more than {min(max_pixels, MAX_PIXELS)} pixels (a decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise ImageRefused(label, f"not an image in a format taken here ({', '.join(FORMATS)})") from None
    except READ_ERRORS as exc:
        raise ImageRefused(label, f"unreadable: {_reason(exc)}") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(
                label,
                f"it declares {width}x{height} pixels, more than the {max_pixels} allowed (a decompression bomb?)",
            )
        try:
            image.load()
        except READ_ERRORS as exc:
            raise ImageRefused(label, f"unreadable: {_reason(exc)}") from None
        yield image


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite transparent images over white, as a viewer shows them (a bare convert would turn them black)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit and float images scaled to 8 bits (Pillow's own conversion clips them at 255, turning a 16-bit scan
    white): 16-bit values by 1/257, floats in [0, 1] by 255, any other range stretched to 0..255."""
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and 255 < high <= 65535):
        scaled = values / 257.0
    elif image.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    elif low >= 0 and high <= 255:
        scaled = values
    else:
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def as_displayed(image: Image.Image) -> Image.Image:
    """The image as a viewer shows it, ready for a bare `convert` to L or RGB: transparency laid on white, 16-bit
    and float values scaled to 8 bits."""
    return _eight_bit(_flatten_alpha(image))
