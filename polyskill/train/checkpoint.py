"""Atomic writes and code-free loads: a crash never leaves a broken checkpoint, a load never runs code."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import RunError


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write through `write(file)` into a temporary file beside `path`, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise RunError(f"could not write {path} ({exc}); the previous version, if any, is intact") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save `state` (tensors, numbers, strings, lists, dicts only) atomically."""
    _atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint with weights_only=True: a file that needs arbitrary code to unpickle is refused."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on foreign pickles; the refusal below says it all
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RunError(f"refusing to load {path}: it is not a weights-only checkpoint ({str(exc).splitlines()[0]})") \
            from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise RunError(f"checkpoint {path} is unreadable or truncated ({str(exc).splitlines()[0]})") from None


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    _atomic_write(path, lambda f: f.write(text), mode="w")


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (indented, keys in insertion order)."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: Path) -> dict:
    """Read a JSON file written by write_json, with a clear error if it is missing or damaged."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} is not valid JSON ({exc})") from None
