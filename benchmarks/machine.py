"""What a benchmark ran on, for the record: CPU model, cores, load and library versions."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """CPU model, cores, load, platform and library versions."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {
        "cpu": model or platform.machine(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def describe(threads: int) -> str:
    """One line: date, CPU, threads, torch version and the load average when the run ended."""
    info = machine()
    load = ", load {:.1f}".format(info["load_average"][0]) if info["load_average"] else ""
    return (
        f"date {datetime.datetime.now().isoformat(timespec='seconds')}, {info['cpu']}, {threads} thread(s), "
        f"torch {info['torch']}{load}"
    )
