"""run.json: what a run is (recipe, algorithm, data set), where and on what it ran, and how it ended.

Written when training starts (status "running") and again when it ends; a run whose process died without
ending it (SIGKILL, power loss) reads back as "interrupted", so `polyskill runs` never shows a dead run as live.
The process is identified by its PID and, on Linux, its start time: a PID the system has since handed to an
unrelated process does not make a dead run look live (nor block its resume).
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

from .._version import __version__
from ..errors import RunError
from .checkpoint import read_json, write_json

STATUS_FILE = "run.json"
RUNNING, FINISHED, INTERRUPTED = "running", "finished", "interrupted"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


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

    env: dict[str, Any] = {
        "polyskill": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": device,
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device) if device.startswith("cuda") else 0)
        env["cuda"] = torch.version.cuda
    return env


def start_run(out: Path, recipe: str, algorithm: str, dataset: str, device: str) -> None:
    """Mark `out` as running in this process; a resumed run keeps its first start time and counts resumes."""
    path = Path(out) / STATUS_FILE
    old = read_json(path) if path.is_file() else {}
    resumed = old.get("resumed")
    write_json(
        path,
        {
            "recipe": recipe,
            "algorithm": algorithm,
            "dataset": dataset,
            "status": RUNNING,
            "message": None,
            "started": old.get("started", _now()),
            "resumed": resumed + 1 if type(resumed) is int else 0,
            "ended": None,
            "pid": os.getpid(),
            "pid_start": process_start(os.getpid()),
            "host": socket.gethostname(),
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
            "environment": environment(device),
        },
    )


def end_run(out: Path, status: str, message: str | None = None) -> None:
    """Record how the run ended ("finished", "stopped at the time budget", "diverged", "failed", ...)."""
    path = Path(out) / STATUS_FILE
    if not path.is_file():
        return
    record = read_json(path)
    record.update(status=status, message=message, ended=_now())
    write_json(path, record)


def process_start(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat), or None where the
    system does not say (not Linux, no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()  # after "PID (COMMAND) ": the command may hold spaces and ")"
    try:
        return int(fields[19])  # fields[0] is field 3 (the state), so field 22 is fields[19]
    except (IndexError, ValueError):
        return None


def _alive(pid: int, started: int | None = None) -> bool:
    """Whether process `pid` exists and, when its start time was recorded and can be read, is the same process."""
    if pid <= 0:
        return False  # not a process (0 and negative numbers would name process groups)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    if started is None:
        return True
    now = process_start(pid)
    return now is None or now == started


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
    pid, started = record.get("pid"), record.get("pid_start")
    if (
        record.get("status") == RUNNING
        and record.get("host") == socket.gethostname()
        and isinstance(pid, int)
        and not isinstance(pid, bool)
        and not _alive(pid, started if isinstance(started, int) else None)
    ):
        record["status"] = INTERRUPTED
    return record
