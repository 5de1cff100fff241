"""Progress bars for every long job (training, evaluation, data preparation), silenced at once by quiet mode."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm

_quiet = os.environ.get("POLYSKILL_QUIET", "") not in ("", "0")


def set_quiet(quiet: bool) -> None:
    """Quiet mode (`--quiet`, or POLYSKILL_QUIET=1): no bars, for logs and batch jobs."""
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    """Whether progress bars are off now (a trainer asks before drawing its own)."""
    return _quiet


@contextmanager
def quiet_if(condition: bool) -> Iterator[None]:
    """Quiet mode inside the block when `condition` holds (a trainer told not to show progress)."""
    global _quiet
    before = _quiet
    _quiet = _quiet or condition
    try:
        yield
    finally:
        _quiet = before


def progress(
    iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str, **options: Any
) -> tqdm:
    """A tqdm bar with rate and ETA, on stderr, cleared when done; off in quiet mode and when stderr is not a
    terminal (a log file would fill with carriage returns)."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=True if _quiet else None,
        dynamic_ncols=True,
        mininterval=0.5,
        leave=False,
        **options,
    )
