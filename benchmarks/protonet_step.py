"""Seconds per ProtoNet meta-training step on Omniglot (Conv4), fp32 against bf16 autocast, in one run.

    POLYSKILL_DATA=../shared/data .venv/bin/python benchmarks/protonet_step.py --way 60 --shot 1 --query 5

The precisions are timed in turn (repeats alternate) so both see the same machine load; the table gives the
median seconds per step and the speed-up of each precision over fp32.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from machine import describe

from polyskill.data import EpisodeSampler, omniglot
from polyskill.meta import PrototypicalNetworks
from polyskill.nn import Conv4, autocast, native_bf16


def seconds_per_step(precision: str, sampler: EpisodeSampler, steps: int, warmup: int) -> float:
    """Mean seconds over `steps` timed Adam steps after `warmup` untimed ones (a fresh model each call)."""
    torch.manual_seed(0)
    algo = PrototypicalNetworks(Conv4())
    optimizer = torch.optim.Adam(algo.parameters(), lr=1e-3)
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        batch = sampler.sample()
        with autocast(precision):
            loss, _ = algo.meta_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--way", type=int, default=60)
    parser.add_argument("--shot", type=int, default=1)
    parser.add_argument("--query", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    precisions = ["fp32"] + (["bf16"] if native_bf16() else [])
    sampler = EpisodeSampler(omniglot("vinyals/train"), args.way, args.shot, args.query, seed=0)
    times: dict[str, list[float]] = {p: [] for p in precisions}
    for _ in range(args.repeats):
        for precision in precisions:
            times[precision].append(seconds_per_step(precision, sampler, args.steps, args.warmup))
    print(
        f"ProtoNet meta-step, Conv4, Omniglot {args.way}-way {args.shot}-shot {args.query}-query, "
        f"{args.repeats} x {args.steps} steps"
    )
    print(describe(args.threads) + f", native bf16: {native_bf16()}")
    base = statistics.median(times["fp32"])
    for precision in precisions:
        median = statistics.median(times[precision])
        print(f"  {precision:5s} {median:.4f} s/step   {1 / median:6.2f} steps/s   {base / median:.2f}x fp32")


if __name__ == "__main__":
    main()
