"""The study's database: SQLite for one machine, PostgreSQL (or any SQLAlchemy URL) for several."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: seconds a SQLite writer waits for another worker's lock before giving up ("database is locked")
SQLITE_TIMEOUT = 120
#: a running trial that has not written a heartbeat for this long belongs to a dead worker and is marked FAIL
HEARTBEAT_SECONDS, GRACE_SECONDS = 60, 300


def sqlite_path(url: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URL (None for other databases or an in-memory SQLite)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def open_storage(url: str) -> Any:
    """An Optuna RDB storage for `url`, shared safely by several worker processes: SQLite waits for locks,
    and every trial writes a heartbeat so that one left running by a killed worker is failed, not kept."""
    import optuna

    if "://" not in url or (url.startswith("sqlite://") and sqlite_path(url) is None):
        raise ConfigError(
            f"--storage must be a database URL that worker processes can share, such as "
            f"sqlite:///sweeps.db or postgresql://USER:PASSWORD@HOST/DB; got {url!r}"
        )
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable enough here
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS
            )
    except ImportError as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        raise ConfigError(
            f"--storage {url.split('://')[0]}://...: its database driver is missing ({cause}); "
            f"for PostgreSQL: pip install 'psycopg[binary]'"
        ) from None
    except Exception as exc:  # SQLAlchemy's errors: a bad URL, a refused connection, a wrong password
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot open --storage {_redacted(url)}: {first}") from None


def _redacted(url: str) -> str:
    """`url` without its password, for error messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"
