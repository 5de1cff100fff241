"""Episode videos: RGB frames written as a .gif (Pillow, always available) or an .mp4 (imageio with imageio-ffmpeg),
atomically, so that a half-written video never sits under the final name."""

from __future__ import annotations

import contextlib
import importlib
import numbers
import os
import uuid
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

from polyskill.errors import ConfigError


def write_video(frames: list[np.ndarray], path: str | Path, fps: int = 20) -> Path:
    """Write uint8 RGB frames [H, W, 3] to `path` (.gif or .mp4) at `fps` frames per second; returns the path.

    A GIF merges identical consecutive frames into one longer frame (Pillow does), which keeps the playback time."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ConfigError(f"a video must be a .gif or an .mp4, got {str(path)!r}")
    if isinstance(fps, bool) or not isinstance(fps, numbers.Integral) or fps < 1:
        raise ConfigError(f"video fps must be a whole number >= 1, got {fps!r}")
    images = _check_frames(frames)
    imageio = _imageio() if suffix == ".mp4" else None
    # a temporary name in the same folder (so the rename is atomic), created by the writer with the umask's mode
    temp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if imageio is None:
            pictures = [Image.fromarray(f) for f in images]
            duration = round(1000 / fps)
            pictures[0].save(temp, format="GIF", save_all=True, append_images=pictures[1:], duration=duration, loop=0)
        else:
            imageio.mimwrite(temp, images, format="FFMPEG", fps=fps)
        os.replace(temp, path)
    except OSError as e:
        raise ConfigError(f"cannot write the video {str(path)!r}: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(OSError):
            os.remove(temp)
    return path


def _check_frames(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The frames as uint8 arrays of one shape [H, W, 3]; ValueError for none or a frame of another shape or type."""
    if len(frames) == 0:
        raise ValueError("write_video needs at least one frame")
    images = [np.asarray(f) for f in frames]
    first = images[0].shape
    for i, image in enumerate(images):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.shape != first:
            raise ValueError(f"frame {i} must be uint8 [H, W, 3] like frame 0 {first}, got {image.dtype} {image.shape}")
    return images


def _imageio() -> ModuleType:
    """imageio's v2 API once imageio-ffmpeg (its ffmpeg binary) is importable; ConfigError otherwise."""
    try:
        importlib.import_module("imageio_ffmpeg")
        return importlib.import_module("imageio.v2")
    except ImportError:
        raise ConfigError("writing .mp4 needs imageio-ffmpeg: pip install imageio-ffmpeg, or write a .gif") from None
