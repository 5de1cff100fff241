"""Whole distributed runs inside a test: ranks started by `torch.multiprocessing.spawn`, each training a list of
runs with `train_run` under torchrun's environment, as `polyskill train --nproc` starts them, but with one
interpreter start-up per rank for all the runs."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.multiprocessing as mp

from polyskill.distributed.launch import free_port
from polyskill.recipes import load
from polyskill.recipes.runner import train_run

#: one run: (recipe name or path, overrides, output folder)
Job = tuple[str, list[str], str]


def _rank(rank: int, world: int, ports: list[int], jobs: list[Job]) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
    )
    torch.set_num_threads(1)
    for (recipe, overrides, out), port in zip(jobs, ports, strict=True):
        os.environ["MASTER_PORT"] = str(port)  # each run its own rendezvous
        train_run(load(recipe, overrides), Path(out), progress=False, evaluate=False)


def train_on_ranks(jobs: list[Job], world: int = 2) -> None:
    """Train every job on `world` gloo processes, one after the other (no test evaluation, like --no-eval)."""
    mp.spawn(_rank, args=(world, [free_port() for _ in jobs], jobs), nprocs=world, join=True)
