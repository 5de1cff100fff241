"""Reading a data set's pickle without running its code: unpickling can call any importable function, so only
what numpy arrays, dtypes and scalars and the builtin containers need is importable; anything else (os.system in a
`__reduce__`, a class of some library) is refused with one DataError naming the file, before it is called."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

_NUMPY = {
    ("multiarray", "_reconstruct"),
    ("multiarray", "scalar"),
    ("numeric", "_frombuffer"),
}
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol 2 writes bytes
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "bytes"),  # how protocols 0 to 2 write empty bytes (an empty array's data)
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
    ("__builtin__", "bytearray"),
    ("__builtin__", "bytes"),
    ("collections", "OrderedDict"),
}
#: what a damaged or foreign pickle raises while it is read
_READ_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    ImportError,
    UnicodeDecodeError,
    OverflowError,
)


class _Refused(Exception):
    """A global the pickle asked for that is not allowed."""


class DataUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` gives only numpy's array, dtype and scalar constructors and builtin
    containers; numpy's private module moved (`numpy.core` -> `numpy._core`), so both spellings are taken."""

    def find_class(self, module: str, name: str) -> Any:
        parts = module.split(".")
        if parts[0] == "numpy" and len(parts) == 3 and parts[1] in ("core", "_core") and (parts[2], name) in _NUMPY:
            return getattr(getattr(getattr(np, "_core", None) or np.core, parts[2]), name)
        if (module, name) not in _ALLOWED:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


def load_pickle(path: str | os.PathLike, encoding: str = "latin1") -> Any:
    """The object in pickle file `path`, built from numpy arrays and plain containers only; a refused import, a
    truncated file or one that is not a pickle is one DataError naming the file. `encoding` decodes Python 2
    strings (latin1 keeps their numpy arrays' bytes intact)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return DataUnpickler(f, encoding=encoding).load()
    except _Refused as exc:
        raise DataError(
            f"refusing to read {path}: the pickle asks to import {exc}, and only numpy arrays and plain containers "
            "are allowed (unpickling anything else would run code it chooses)"
        ) from None
    except MemoryError:
        raise DataError(f"cannot read {path}: it declares more data than fits in memory") from None
    except _READ_ERRORS as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DataError(f"cannot read {path}: truncated, damaged or not a data pickle ({reason})") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
