"""Which process this is among how many, read from the environment torchrun (or `--nproc`) sets up."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from ..errors import ConfigError

#: how long a collective waits for a rank that died or hangs before every rank stops with an error
DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class DistContext:
    """Rank `rank` of `world` processes (a single process is rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes the run directory and logs."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether there are other processes to talk to."""
        return self.world > 1


SINGLE = DistContext()


def backend_for(device: str) -> str:
    """NCCL for CUDA devices, gloo for the CPU."""
    return "nccl" if device.startswith("cuda") else "gloo"


def from_environment(device: str = "cpu", timeout_s: float | None = None) -> DistContext:
    """Join the process group described by RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT (torchrun's
    variables), or return SINGLE when WORLD_SIZE is unset or 1. A collective that waits longer than
    `timeout_s` (default $POLYSKILL_COLLECTIVE_TIMEOUT, else 120 s) for another rank fails on every rank."""
    try:
        timeout_s = (
            float(os.environ.get("POLYSKILL_COLLECTIVE_TIMEOUT", DEFAULT_TIMEOUT_S)) if timeout_s is None else timeout_s
        )
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise ConfigError(
            f"bad distributed environment (RANK, WORLD_SIZE, LOCAL_RANK, POLYSKILL_COLLECTIVE_TIMEOUT): {exc}"
        ) from None
    if world <= 1:
        return SINGLE
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend, timeout=dt.timedelta(seconds=timeout_s))
    return DistContext(rank, world, local_rank, backend)
