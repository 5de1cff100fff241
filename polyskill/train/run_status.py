"""run.json: what a run is (recipe, algorithm, data set), where and on what it ran, and how it ended.

Written when training starts (status "running") and again when it ends; a run whose process died without
ending it (SIGKILL, power loss) reads back as "interrupted", so `polyskill runs` never shows a dead run as live.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

import torch

from ..errors import RunError
from .checkpoint import read_json, write_json

STATUS_FILE = "run.json"
RUNNING, FINISHED, INTERRUPTED = "running", "finished", "interrupted"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str = "cpu") -> dict[str, Any]:
    """The software and hardware a run trains on, for its report."""
    import numpy

    from .. import __version__

    env: dict[str, Any] = {
        "polyskill": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "numpy": numpy.__version__, "platform": platform.platform(), "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "device": device,
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device) if device.startswith("cuda") else 0)
        env["cuda"] = torch.version.cuda
    return env


def start_run(out: Path, recipe: str, algorithm: str, dataset: str, device: str) -> None:
    """Mark `out` as running in this process; a resumed run keeps its first start time and counts resumes."""
    path = Path(out) / STATUS_FILE
    old = read_json(path) if path.is_file() else {}
    write_json(path, {
        "recipe": recipe, "algorithm": algorithm, "dataset": dataset, "status": RUNNING, "message": None,
        "started": old.get("started", _now()), "resumed": old["resumed"] + 1 if "resumed" in old else 0,
        "ended": None, "pid": os.getpid(), "host": socket.gethostname(),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "environment": environment(device),
    })


def end_run(out: Path, status: str, message: str | None = None) -> None:
    """Record how the run ended ("finished", "stopped at the time budget", "diverged", "failed", ...)."""
    path = Path(out) / STATUS_FILE
    if not path.is_file():
        return
    record = read_json(path)
    record.update(status=status, message=message, ended=_now())
    write_json(path, record)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(run: Path) -> dict[str, Any]:
    """run.json of `run`, with a "running" run whose process on this host is gone reported as "interrupted"
    (an empty mapping for runs trained before run.json existed)."""
    path = Path(run) / STATUS_FILE
    if not path.is_file():
        return {}
    try:
        record = read_json(path)
    except RunError:
        return {"status": "unreadable run.json"}
    if (record.get("status") == RUNNING and record.get("host") == socket.gethostname()
            and isinstance(record.get("pid"), int) and not _alive(record["pid"])):
        record["status"] = INTERRUPTED
    return record
