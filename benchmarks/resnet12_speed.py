"""ResNet-12 training throughput and peak memory at 84x84: polyskill against learn2learn, and MAML on ResNet-12.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/resnet12_speed.py --threads 2

Part 1, forward + backward: a batch of 80 colour images 84x84 (one 5-way 1-shot 15-query episode), a 5-way linear
head, cross-entropy, SGD step; polyskill's `ResNet12(out_features=5)` against learn2learn 0.2.0's
`vision.models.ResNet12(output_size=5)` (both 64-160-320-640, no dropout or DropBlock: learn2learn's
`dropblock_dropout=0`), in fp32 and under bf16 autocast, with the default (contiguous) layout and with channels_last
weights and inputs. Images per second and the ratio polyskill / learn2learn for each setting.

Part 2, one MAML meta-step (`MAML.meta_backward` + Adam) on ResNet-12 with a 5-way head at 84x84, 5-way 1-shot
15-query tasks, one inner step: `first` (FOMAML, every parameter adapts), `second` (second order, every parameter),
`anil` (second order, the head only adapts; the engine's `auto` choice, a vmapped pass), `anil-loop` (the same with
`vectorize: loop, query_pass: loop`), `last` (second order, the last block and the head adapt: the inner loop's
`MAML(adapt=["blocks.3", "head"])`). Seconds per step and peak memory.

Inputs are random tensors (speed and memory do not depend on pixel values). Every measurement runs in a fresh
process, whose peak resident memory (`resource.getrusage(...).ru_maxrss`, Linux KiB) is its own: it counts every
allocation, tensors, oneDNN's scratch space and the interpreter (tracemalloc does not see torch's allocations).
"above start" is the growth from before the first step. learn2learn runs in the peers venv (`--peers`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from machine import describe

WAY, SHOT, QUERY, SIZE = 5, 1, 15, 84
BATCH = WAY * (SHOT + QUERY)
PRECISIONS = ("fp32", "bf16")
LAYOUTS = ("contiguous", "channels_last")
MAML_MODES = {"first": 2, "second": 1, "anil": 2, "anil-loop": 2, "last": 2}  # mode -> meta-batch (first: also 1)
LOOP = {"vectorize": "loop", "query_pass": "loop"}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model(impl: str, layout: str):
    """The 5-way ResNet-12 of `impl` with weights in `layout`."""
    import torch

    torch.manual_seed(0)
    if impl == "polyskill":
        from polyskill.nn import ResNet12

        return ResNet12(out_features=WAY, channels_last=layout == "channels_last")
    from learn2learn.vision.models import ResNet12 as L2LResNet12

    model = L2LResNet12(output_size=WAY, dropblock_dropout=0.0)
    return model.to(memory_format=torch.channels_last) if layout == "channels_last" else model


def speed_worker(impl: str, precision: str, layout: str, steps: int, warmup: int, threads: int) -> dict:
    """Seconds per forward + backward + SGD step of one implementation on a batch of BATCH images."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    model = _model(impl, layout).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 3, SIZE, SIZE, generator=g)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(WAY).repeat_interleave(SHOT + QUERY)
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else None
    base = _rss_mib()
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        if cast is not None:
            with cast:
                out = model(x)
        else:
            out = model(x)
        F.cross_entropy(out.float(), y).backward()
        optimizer.step()
    seconds = (time.perf_counter() - start) / steps
    return {"seconds": seconds, "images_per_s": BATCH / seconds, "max_rss_mib": _rss_mib(), "base_rss_mib": base}


def maml_worker(mode: str, meta_batch: int, precision: str, steps: int, warmup: int, threads: int) -> dict:
    """Seconds per MAML meta-step on ResNet-12 and the peak memory of this process."""
    import torch

    from polyskill.data.episodes import TaskBatch
    from polyskill.meta import MAML
    from polyskill.nn import ResNet12, autocast

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = ResNet12(out_features=WAY)
    options = LOOP if mode == "anil-loop" else {}
    adapt = ["blocks.3", "head"] if mode == "last" else None
    algo = MAML(
        net,
        inner_lr=0.01,
        inner_steps=1,
        first_order=mode == "first",
        head_only=mode.startswith("anil"),
        adapt=adapt,
        **options,
    )
    optimizer = torch.optim.Adam(algo.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(WAY)
    batch = TaskBatch(
        torch.randn(meta_batch, WAY * SHOT, 3, SIZE, SIZE, generator=g),
        labels.repeat_interleave(SHOT).expand(meta_batch, -1).clone(),
        torch.randn(meta_batch, WAY * QUERY, 3, SIZE, SIZE, generator=g),
        labels.repeat_interleave(QUERY).expand(meta_batch, -1).clone(),
        WAY,
    )
    base = _rss_mib()
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast(precision):
            algo.meta_backward(batch)
        optimizer.step()
    seconds = (time.perf_counter() - start) / steps
    return {"seconds": seconds, "max_rss_mib": _rss_mib(), "base_rss_mib": base}


def _run(python: str, args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([python, __file__, *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {' '.join(args[1:5])}: {result}", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--maml-steps", type=int, default=1)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    parser.add_argument("--maml-precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--parts", default="speed,maml", help="speed, maml or both")
    parser.add_argument("--maml-modes", default=",".join(MAML_MODES), help="of " + ", ".join(MAML_MODES))
    parser.add_argument("--peers", default=os.environ.get("POLYSKILL_PEERS", "/tmp/peers/bin/python"))
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    timing = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    if args.worker:
        part, a, b, c = args.worker
        if part == "speed":
            result = speed_worker(a, b, c, args.steps, args.warmup, args.threads)
        else:
            result = maml_worker(a, int(b), c, args.steps, args.warmup, args.threads)
        print(json.dumps(result))
        return
    parts = args.parts.split(",")
    if "speed" in parts and not Path(args.peers).is_file():
        sys.exit(f"no peer interpreter at {args.peers}: run bash ../shared/bench/setup_peers.sh or pass --peers")
    summary: dict[str, dict] = {}
    if "speed" in parts:
        print(f"ResNet-12 (64-160-320-640, 5-way head) forward + backward + SGD, batch {BATCH} x 3 x {SIZE} x {SIZE}")
        print(
            f"{'precision':9s} {'layout':13s} {'polyskill img/s':>15s} {'l2l img/s':>10s} {'ratio':>6s} "
            f"{'ours max RSS MiB':>16s} {'l2l max RSS MiB':>15s}"
        )
        for precision in PRECISIONS:
            for layout in LAYOUTS:
                ours = _run(sys.executable, ["--worker", "speed", "polyskill", precision, layout, *timing])
                peer = _run(args.peers, ["--worker", "speed", "learn2learn", precision, layout, *timing])
                ratio = ours["images_per_s"] / peer["images_per_s"]
                print(
                    f"{precision:9s} {layout:13s} {ours['images_per_s']:15.2f} {peer['images_per_s']:10.2f} "
                    f"{ratio:5.2f}x {ours['max_rss_mib']:16.0f} {peer['max_rss_mib']:15.0f}"
                )
                summary[f"speed/{precision}/{layout}"] = {"polyskill": ours, "learn2learn": peer, "ratio": ratio}
    if "maml" in parts:
        print(
            f"MAML meta-step on ResNet-12 (5-way head), {WAY}-way {SHOT}-shot {QUERY}-query {SIZE}x{SIZE}, "
            f"1 inner step, {args.maml_precision}"
        )
        print(f"{'mode':7s} {'meta-batch':>10s} {'s/step':>8s} {'max RSS MiB':>12s} {'above start':>12s}")
        maml_timing = ["--steps", str(args.maml_steps), "--warmup", "1", "--threads", str(args.threads)]
        modes = args.maml_modes.split(",")
        runs = [(m, b) for m, b in [("first", 1), *MAML_MODES.items()] if m in modes]
        for mode, meta_batch in runs:
            r = _run(sys.executable, ["--worker", "maml", mode, str(meta_batch), args.maml_precision, *maml_timing])
            growth = r["max_rss_mib"] - r["base_rss_mib"]
            print(f"{mode:7s} {meta_batch:10d} {r['seconds']:8.2f} {r['max_rss_mib']:12.0f} {growth:12.0f}")
            summary[f"maml/{mode}/{meta_batch}"] = r
    print(describe(args.threads))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
