"""Getting a registered data file: find it under the data root, download it if allowed, check its SHA-256."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError
from .registry import FILES, FileEntry
from .root import data_root, root_origin

ENV_OFFLINE = "POLYSKILL_OFFLINE"
_verified: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, entry: FileEntry) -> None:
    """Raise DataError naming the file and both digests if `path` is not the registered content."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    actual = _verified.get(key) or sha256_of(path)
    if actual != entry.sha256:
        raise DataError(
            f"data file {path} is corrupt or not the expected version: SHA-256 expected {entry.sha256}, "
            f"got {actual}. Delete it and provide a fresh copy" + (f" from {entry.url}" if entry.url else "") + "."
        )
    _verified[key] = actual


def downloads_allowed() -> bool:
    """False when $POLYSKILL_OFFLINE is set to anything but 0/false/empty."""
    return os.environ.get(ENV_OFFLINE, "").lower() in ("", "0", "false", "no")


def _download(entry: FileEntry, target: Path, timeout: float = 30.0) -> None:
    """Download to a temporary file beside `target`, check the digest, then rename into place."""
    if not entry.url:
        raise DataError(f"data file '{entry.path}' has no download address")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(entry.url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
        verify(Path(tmp), entry)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _missing_message(entry: FileEntry, path: Path, root_arg, reason: str) -> str:
    where = f"{path} (data root {data_root(root_arg)}, {root_origin(root_arg)})"
    how = f"download it from {entry.url}" if entry.url else (entry.hint or "copy it from another data root")
    return (
        f"data file '{entry.path}' is missing: looked for {where}; {reason}. "
        f"To provide it, {how} and place it at {path}, or point $POLYSKILL_DATA at a folder that has it."
    )


def fetch(name: str, root: str | os.PathLike | None = None, *, registry: dict[str, FileEntry] | None = None) -> Path:
    """Path of registered file `name` under the data root, downloaded if missing and allowed, always verified."""
    entry = (registry or FILES).get(name)
    if entry is None:
        raise DataError(f"unknown data file '{name}'; known files: {', '.join(sorted(registry or FILES))}")
    path = data_root(root) / entry.path
    if not path.is_file():
        if not entry.url:
            raise DataError(_missing_message(entry, path, root, "it has no public download address"))
        if not downloads_allowed():
            raise DataError(_missing_message(entry, path, root, f"downloads are off (${ENV_OFFLINE} is set)"))
        try:
            _download(entry, path)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DataError(_missing_message(entry, path, root, f"downloading it failed ({reason})")) from None
    verify(path, entry)
    return path


def status(root: str | os.PathLike | None = None, check: bool = False) -> list[tuple[FileEntry, str]]:
    """(entry, state) for every registered file: 'present', 'missing', or with `check` 'ok' / 'corrupt'."""
    rows = []
    base = data_root(root)
    for entry in FILES.values():
        path = base / entry.path
        if not path.is_file():
            state = "missing"
        elif not check:
            state = "present"
        else:
            state = "ok" if sha256_of(path) == entry.sha256 else "corrupt"
        rows.append((entry, state))
    return rows
