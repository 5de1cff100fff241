"""Atomic writes and code-free loads: a crash never leaves a broken checkpoint, a load never runs code, and a
damaged or foreign file is one RunError naming it, whatever the library reading it raised."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import RunError


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when the message is empty."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def updating(path: Path) -> Iterator[None]:
    """Hold `path` for a read-modify-write (an advisory lock on a hidden file beside it), so that two processes
    updating it at once (a training ending while `polyskill eval` records its results) do not lose each other's."""
    path = Path(path)
    with open(path.with_name(f".{path.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write through `write(file)` into a temporary file beside `path`, fsync, then rename over it; on any failure
    the temporary file is removed and the previous version of `path` is left as it was."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise RunError(
            f"could not write {path} ({_first_line(exc)}); the previous version, if any, is intact"
        ) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _torch_save(state: dict, file: Any) -> None:
    """torch.save, with its writer's failures (a full disk, a file size limit) raised as the OSError they are."""
    try:
        torch.save(state, file)
    except RuntimeError as exc:  # "PytorchStreamWriter failed writing file ...": torch reports I/O as RuntimeError
        raise OSError(f"the checkpoint writer failed; is the disk full? ({_first_line(exc)})") from exc


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save `state` (tensors, numbers, strings, lists, dicts only) atomically."""
    _atomic_write(path, lambda f: _torch_save(state, f))


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint with weights_only=True: a file that needs arbitrary code to unpickle is refused, and a
    damaged one (empty, truncated, not a checkpoint) is one RunError naming it."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on foreign pickles; the refusal below says it all
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise RunError(
            f"refusing to load {path}: it is damaged or not a weights-only checkpoint (a file that needs "
            f"code to load is never loaded)"
        ) from None
    except OSError as exc:
        raise RunError(f"cannot read checkpoint {path} ({_first_line(exc)})") from None
    except Exception as exc:  # zip, pickle, storage and size errors of a damaged file alike
        detail = _first_line(exc).split(". ")[0]
        detail = type(exc).__name__ if detail == type(exc).__name__ else f"{type(exc).__name__}: {detail}"
        raise RunError(f"checkpoint {path} is damaged (empty, truncated or not a checkpoint: {detail})") from None
    if not isinstance(state, dict):
        raise RunError(f"checkpoint {path} is damaged: it holds a {type(state).__name__}, not a checkpoint")
    return state


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    _atomic_write(path, lambda f: f.write(text), mode="w")


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (indented, keys in insertion order)."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: Path) -> dict:
    """Read a JSON object written by write_json, with one RunError naming the file if it is missing, unreadable,
    not UTF-8, not JSON, nested too deeply to parse, or not an object."""
    path = Path(path)
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path} does not exist") from None
    except OSError as exc:
        raise RunError(f"cannot read {path} ({_first_line(exc)})") from None
    except UnicodeDecodeError:
        raise RunError(f"{path} is damaged: it is not UTF-8 text") from None
    except RecursionError:
        raise RunError(f"{path} is damaged: its JSON is nested too deeply to read") from None
    except ValueError as exc:  # JSONDecodeError, and numbers too long to convert
        raise RunError(f"{path} is not valid JSON ({_first_line(exc)})") from None
    if not isinstance(value, dict):
        raise RunError(f"{path} is damaged: it holds a JSON {type(value).__name__}, expected an object")
    return value
