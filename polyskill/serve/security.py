"""Who may talk to the server: the API key (read from a file, compared in constant time), the rule that a
non-loopback bind needs one, and the Host names a loopback server answers (against DNS rebinding)."""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path

from ..errors import ConfigError

MIN_KEY_CHARS = 16
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
MAX_KEY_FILE_BYTES = 4096


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the server on this machine (localhost or a loopback address)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_api_key(path: str | os.PathLike) -> str:
    """The key in the first line of `path` (surrounding spaces ignored), at least MIN_KEY_CHARS printable ASCII
    characters, or ConfigError."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_KEY_FILE_BYTES:
            raise ConfigError(f"--api-key-file {file} is larger than {MAX_KEY_FILE_BYTES} bytes; it holds one key")
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read --api-key-file {file}: {exc.strerror or exc}") from None
    try:
        lines = raw.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise ConfigError(f"--api-key-file {file}: the key must be printable ASCII") from None
    key = lines[0].strip() if lines else ""
    if len(key) < MIN_KEY_CHARS or not key.isprintable() or any(c.isspace() for c in key):
        raise ConfigError(
            f"--api-key-file {file}: the key must be one line of at least {MIN_KEY_CHARS} printable characters "
            "without spaces (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))' > key`)"
        )
    return key


def key_matches(given: str | None, key: str) -> bool:
    """Whether a request's key is the server's, compared in time independent of where they differ."""
    return given is not None and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), key.encode("ascii"))


def check_bind(host: str, api_key: str | None) -> None:
    """ConfigError for a bind that would expose the service beyond this machine without an API key."""
    if api_key is None and not is_loopback(host):
        raise ConfigError(
            f"--host {host} would expose the service to other machines: give --api-key-file FILE too (or serve on "
            "127.0.0.1 behind a reverse proxy that authenticates)"
        )


def allowed_hosts(host: str, extra: list[str]) -> tuple[str, ...] | None:
    """The Host header names a server bound to `host` answers: on a loopback bind the loopback names plus
    `extra`; on any other bind (where the API key guards the API) every name."""
    if not is_loopback(host):
        return None
    return (*LOOPBACK_NAMES, *(name.lower() for name in extra))


def host_name(header: str) -> str:
    """The name of a Host header, without its port (`[::1]:8000` -> `::1`)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header
