"""How the inner-loop engine batches tasks: MAML and ANIL meta-steps and adapted evaluation with `vectorize` /
`query_pass` at vmap, loop and auto, in one run.

    .venv/bin/python benchmarks/inner_loop_batching.py --repeats 3

Conv4 (64 channels, batch norm on batch statistics, 5-way head) on random 28x28 inputs shaped like Omniglot 5-way
1-shot tasks: meta-batches of 32 tasks with 1 query per class (`omniglot-maml` and `omniglot-anil`'s training
episodes), one inner step of 0.4, second order; evaluation adapts 32 tasks of 15 queries per class with 3 steps
(`eval_steps`). The same inputs and initial weights for every setting; repeats alternate between the settings,
and the table gives median seconds and the ratio to vmap. Speed only: memory per setting is in
benchmarks/resnet12_speed.py and maml_speed.py, one process each.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from machine import describe

from polyskill.data import TaskBatch
from polyskill.meta import MAML
from polyskill.nn import Conv4

SETTINGS = ("vmap", "loop", "auto")
WAY, TASKS = 5, 32


def episodes(query: int, seed: int) -> TaskBatch:
    """TASKS random 5-way 1-shot tasks of 28x28 images with `query` queries per class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(WAY).repeat(TASKS, 1)
    return TaskBatch(
        torch.rand(TASKS, WAY, 1, 28, 28, generator=g),
        labels,
        torch.rand(TASKS, WAY * query, 1, 28, 28, generator=g),
        torch.arange(WAY).repeat_interleave(query).repeat(TASKS, 1),
        WAY,
    )


def learner(setting: str, head_only: bool) -> MAML:
    torch.manual_seed(0)
    return MAML(
        Conv4(hidden=64, out_features=WAY),
        inner_steps=1,
        eval_steps=3,
        head_only=head_only,
        vectorize=setting,
        query_pass=setting,
    )


def timed(fn, steps: int) -> float:
    """Mean seconds of `steps` calls of fn, after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, test = episodes(1, 0), episodes(15, 1)
    results: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(args.repeats):
        for name, head_only in (("MAML", False), ("ANIL", True)):
            for setting in SETTINGS:
                algo = learner(setting, head_only)
                step = timed(lambda algo=algo: algo.meta_backward(train), args.steps)
                algo.eval()
                evaluation = timed(lambda algo=algo: algo.predict(test), args.steps)
                results.setdefault((name, setting, "meta-step"), []).append(step)
                results.setdefault((name, setting, "evaluation"), []).append(evaluation)
    print(describe(args.threads))
    print("| learner | what | vmap s | loop s | auto s | loop vs vmap | auto vs vmap |")
    print("|---|---|---|---|---|---|---|")
    for name in ("MAML", "ANIL"):
        for what in ("meta-step", "evaluation"):
            med = {s: statistics.median(results[(name, s, what)]) for s in SETTINGS}
            print(
                f"| {name} | {what} | {med['vmap']:.3f} | {med['loop']:.3f} | {med['auto']:.3f} | "
                f"{med['vmap'] / med['loop']:.2f}x | {med['vmap'] / med['auto']:.2f}x |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
