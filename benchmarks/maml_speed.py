"""MAML meta-training steps per second and peak memory: polyskill against learn2learn and higher, in one run.

    POLYSKILL_DATA=../shared/data .venv/bin/python benchmarks/maml_speed.py --steps 10 --repeats 3

Conv4 (64 channels, batch norm on batch statistics, 5-way linear head), Omniglot 5-way 1-shot 15-query, meta-batch
32, one inner step of 0.4, Adam 1e-3, second and first order, all in fp32; `polyskill-bf16` is polyskill under
bf16 autocast (a different precision, listed apart). Every implementation gets the same initial weights
(the same layers built in the same order from seed 0) and the same meta-batches (drawn once by polyskill and saved
to a temporary file). Each measurement runs in a fresh process, so that its peak resident memory (max RSS) is its
own; the peers run in the peer venv (../shared/bench/setup_peers.sh). Repeats alternate between implementations so
that all see the same machine load; the table gives medians and ratios to learn2learn.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe

IMPLEMENTATIONS = ("polyskill", "polyskill-bf16", "learn2learn", "higher")
ORDERS = ("second", "first")
INNER_LR, WAY = 0.4, 5


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _reference_conv4(torch):
    """The same network as polyskill's Conv4(out_features=5), layer for layer, built from plain torch."""
    nn = torch.nn

    def block(a, b):
        return nn.Sequential(
            nn.Conv2d(a, b, 3, padding=1),
            nn.BatchNorm2d(b, track_running_stats=False),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )

    return nn.Sequential(
        nn.Sequential(block(1, 64), block(64, 64), block(64, 64), block(64, 64)), nn.Flatten(), nn.Linear(64, WAY)
    )


def _step_function(impl: str, order: str, torch, task_chunk: int = 8):
    """(parameters, step(batch)) for one implementation; step accumulates the meta-gradient of a batch."""
    F = torch.nn.functional
    first_order = order == "first"
    torch.manual_seed(0)
    if impl.startswith("polyskill"):
        from polyskill.data.episodes import TaskBatch
        from polyskill.meta import MAML
        from polyskill.nn import Conv4, autocast

        algo = MAML(
            Conv4(out_features=WAY), inner_lr=INNER_LR, inner_steps=1, first_order=first_order, task_chunk=task_chunk
        )
        precision = "bf16" if impl.endswith("bf16") else "fp32"

        def step(batch):
            with autocast(precision):
                algo.meta_backward(TaskBatch(*batch, way=WAY))

        return algo.parameters(), step
    model = _reference_conv4(torch)
    if impl == "learn2learn":
        import learn2learn as l2l

        maml = l2l.algorithms.MAML(model, lr=INNER_LR, first_order=first_order)

        def step(batch):
            sx, sy, qx, qy = batch
            for i in range(len(sx)):
                learner = maml.clone()
                learner.adapt(F.cross_entropy(learner(sx[i]), sy[i]))
                (F.cross_entropy(learner(qx[i]), qy[i]) / len(sx)).backward()

        return maml.parameters(), step
    import higher

    inner_opt = torch.optim.SGD(model.parameters(), lr=INNER_LR)
    detach = (lambda grads: [g.detach() for g in grads]) if first_order else None

    def step(batch):
        sx, sy, qx, qy = batch
        for i in range(len(sx)):
            with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
                diffopt.step(F.cross_entropy(fmodel(sx[i]), sy[i]), grad_callback=detach)
                (F.cross_entropy(fmodel(qx[i]), qy[i]) / len(sx)).backward()

    return model.parameters(), step


def worker(impl: str, order: str, data: str, steps: int, warmup: int, threads: int, task_chunk: int) -> dict:
    """Time `steps` meta-steps (after `warmup`) of one implementation in this process."""
    import torch

    torch.set_num_threads(threads)
    batches = torch.load(data, weights_only=True)
    params, step = _step_function(impl, order, torch, task_chunk)
    optimizer = torch.optim.Adam(params, lr=1e-3)
    base = _rss_mib()
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        step(batches[i % len(batches)])
        optimizer.step()
    seconds = (time.perf_counter() - start) / steps
    return {"seconds_per_step": seconds, "max_rss_mib": _rss_mib(), "base_rss_mib": base}


def prepare(path: Path, meta_batch: int, count: int) -> None:
    """`count` meta-batches of real Omniglot 5-way 1-shot 15-query tasks, as plain tensors."""
    import torch

    from polyskill.data import EpisodeSampler, omniglot

    sampler = EpisodeSampler(omniglot("vinyals/train"), WAY, 1, 15, seed=0)
    batches = []
    for _ in range(count):
        b = sampler.sample(meta_batch)
        batches.append((b.support_x, b.support_y, b.query_x, b.query_y))
    torch.save(batches, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--orders", default="second,first")
    parser.add_argument("--task-chunk", type=int, default=8, help="polyskill's MAML(task_chunk=...)")
    parser.add_argument("--impls", default=",".join(IMPLEMENTATIONS))
    parser.add_argument("--peers", default=os.environ.get("POLYSKILL_PEERS", "/tmp/peers/bin/python"))
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "ORDER", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.steps, args.warmup, args.threads, args.task_chunk)))
        return
    impls, orders = args.impls.split(","), args.orders.split(",")
    if any(not i.startswith("polyskill") for i in impls) and not Path(args.peers).is_file():
        sys.exit(f"no peer interpreter at {args.peers}: run bash ../shared/bench/setup_peers.sh or pass --peers")
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "batches.pt"
        prepare(data, args.meta_batch, max(4, args.warmup + 2))
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PYTHONWARNINGS": "ignore"}
        for _ in range(args.repeats):
            for order in orders:
                for impl in impls:
                    python = sys.executable if impl.startswith("polyskill") else args.peers
                    command = [
                        python,
                        __file__,
                        "--worker",
                        impl,
                        order,
                        str(data),
                        "--steps",
                        str(args.steps),
                        "--warmup",
                        str(args.warmup),
                        "--threads",
                        str(args.threads),
                        "--task-chunk",
                        str(args.task_chunk),
                    ]
                    done = subprocess.run(command, capture_output=True, text=True, env=env)
                    if done.returncode != 0:
                        sys.exit(f"{impl} ({order} order) failed:\n{done.stderr[-2000:]}")
                    results.setdefault((impl, order), []).append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        f"MAML meta-step, Conv4, Omniglot {WAY}-way 1-shot 15-query, meta-batch {args.meta_batch}, 1 inner step; "
        f"{args.repeats} x {args.steps} steps per implementation; polyskill task_chunk {args.task_chunk}"
    )
    print(describe(args.threads))
    print(
        f"{'order':7s} {'implementation':15s} {'s/step':>8s} {'steps/s':>8s} {'vs l2l':>7s} "
        f"{'max RSS MiB':>12s} {'above start':>12s}"
    )
    summary = {}
    for order in orders:
        base = results.get(("learn2learn", order))
        base_seconds = statistics.median(r["seconds_per_step"] for r in base) if base else None
        for impl in impls:
            runs = results[(impl, order)]
            seconds = statistics.median(r["seconds_per_step"] for r in runs)
            rss = max(r["max_rss_mib"] for r in runs)
            growth = max(r["max_rss_mib"] - r["base_rss_mib"] for r in runs)
            ratio = f"{base_seconds / seconds:6.2f}x" if base_seconds else "   n/a"
            print(f"{order:7s} {impl:15s} {seconds:8.3f} {1 / seconds:8.2f} {ratio} {rss:12.0f} {growth:12.0f}")
            summary[f"{impl}/{order}"] = {
                "seconds_per_step": seconds,
                "max_rss_mib": rss,
                "rss_growth_mib": growth,
                "runs": runs,
            }
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
