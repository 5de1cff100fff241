"""Where data lives: the data root (explicit > POLYSKILL_DATA > ~/.cache/polyskill) and a writable cache."""

from __future__ import annotations

import os
from pathlib import Path

ENV_ROOT = "POLYSKILL_DATA"
ENV_CACHE = "POLYSKILL_CACHE"
DEFAULT_ROOT = Path("~/.cache/polyskill")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: the explicit argument, else $POLYSKILL_DATA, else ~/.cache/polyskill."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_ROOT)
    return Path(env).expanduser() if env else DEFAULT_ROOT.expanduser()


def root_origin(root: str | os.PathLike | None = None) -> str:
    """Says how the data root was chosen, for error messages (a root equal to the one the environment gives
    was most likely resolved from it by a loader)."""
    if root is not None and Path(root).expanduser() != data_root(None):
        return "given explicitly"
    return f"from ${ENV_ROOT}" if os.environ.get(ENV_ROOT) else f"the default; set ${ENV_ROOT} to change it"


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def cache_dir(root: Path) -> Path:
    """A writable folder for derived arrays: $POLYSKILL_CACHE, else ROOT/cache, else ~/.cache/polyskill/cache.

    A read-only data root (a shared copy) still gets fast second loads through the fallback.
    """
    candidates = [Path(p).expanduser() for p in [os.environ.get(ENV_CACHE)] if p]
    candidates += [root / "cache", DEFAULT_ROOT.expanduser() / "cache"]
    for path in candidates:
        if _writable(path):
            return path
    raise OSError(f"no writable cache folder among {', '.join(map(str, candidates))}; set ${ENV_CACHE}")
