"""Giving freed memory back to the system. Teaching a task allocates and frees many temporary tensors on several
threads; glibc keeps what was freed in its per-thread arenas, so a server that has created thousands of tasks holds
about a gigabyte it does not use (measured: 1.3 GB with 1,000 tasks kept, 0.3 GB after `malloc_trim`)."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


@cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return None


def release_freed_memory() -> bool:
    """Return the C allocator's free memory to the system (glibc's `malloc_trim(0)`, every arena); False where
    the C library has no such call."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
