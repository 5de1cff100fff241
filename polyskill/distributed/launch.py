"""`polyskill train ... --nproc N`: start N local processes with torchrun's environment, and stop them all
when one fails, so that a dead rank never leaves the others waiting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

#: after one rank fails, how long the others get to stop by themselves before they are terminated
GRACE_S = 5.0


def free_port() -> int:
    """A TCP port nobody listens on now, for the rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(argv: list[str], nproc: int) -> int:
    """Run `polyskill ARGV` as ranks 0..nproc-1 on this machine; the exit code of the first rank that failed,
    else 0. Rank 0 speaks; the others' output shows only when they fail."""
    base = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "WORLD_SIZE": str(nproc),
        "LOCAL_WORLD_SIZE": str(nproc),
    }
    base.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    procs = []
    for rank in range(nproc):
        env = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank)}
        quiet = subprocess.DEVNULL if rank else None
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "polyskill.cli", *argv],
                env=env,
                stdout=quiet,
                stderr=None if rank == 0 else subprocess.PIPE,
                text=True,
            )
        )
    failed: int | None = None
    try:
        while any(p.poll() is None for p in procs):
            polled = [p.poll() for p in procs]
            bad = [c for c in polled if c]  # exited, and not with 0
            if bad and failed is None:
                failed = bad[0]
                deadline = time.monotonic() + GRACE_S
            if failed is not None and time.monotonic() > deadline:
                for p in procs:
                    if p.poll() is None:
                        p.kill()  # a hung (or stopped) rank would never act on a gentler signal
            time.sleep(0.1)
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        raise
    codes = [p.wait() for p in procs]
    for rank, p in enumerate(procs[1:], start=1):
        err = p.stderr.read() if p.stderr else ""
        if codes[rank] != 0 and err.strip():
            print(f"rank {rank}: {err.strip().splitlines()[-1]}", file=sys.stderr)
    bad = [c for c in codes if c != 0]
    if failed is None and bad:
        failed = bad[0]
    if failed is not None and codes[0] == 0:
        print(
            f"polyskill: error: a process of the {nproc} failed (exit code {failed}); the others were stopped",
            file=sys.stderr,
        )
    return 0 if failed is None else (failed if failed > 0 else 1)
