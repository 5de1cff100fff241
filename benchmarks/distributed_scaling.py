"""Meta-training throughput on 1 and 2 local processes (gloo, one thread each) for the same global meta-batch,
and the bytes each step all-reduces: what docs/distributed.md's scaling table comes from.

Run: POLYSKILL_DATA=../shared/data .venv/bin/python benchmarks/distributed_scaling.py --steps 200 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

BASE = {
    "data": {"dataset": "omniglot", "train": "vinyals/train", "val": None, "test": "vinyals/test"},
    "episodes": {"way": 5, "shot": 1, "query": 15},
    "train": {"val_every": 100000, "log_every": 50, "precision": "fp32"},
}
CASES = {
    "protonet": {"algo": {"name": "protonet"}, "model": {"hidden": 64}},
    "maml": {"algo": {"name": "maml", "inner_steps": 1, "inner_lr": 0.4}, "model": {"hidden": 64}},
}


def steps_per_second(folder: Path, case: str, nproc: int, steps: int, meta_batch: int) -> float:
    """Training steps per second of one fresh run (the trainer's clock: data loading excluded)."""
    recipe = {
        **BASE,
        **CASES[case],
        "name": f"{case}-{nproc}",
        "train": {**BASE["train"], "steps": steps, "meta_batch": meta_batch},
    }
    path = folder / f"{case}-{nproc}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = folder / f"{case}-{nproc}-run"
    args = [sys.executable, "-m", "polyskill.cli", "train", str(path), "--out", str(out), "--quiet", "--no-eval"]
    if nproc > 1:
        args += ["--nproc", str(nproc)]
    subprocess.run(args, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = json.loads((out / "summary.json").read_text())["train_seconds"]
    subprocess.run(["rm", "-rf", str(out)], check=True)
    return steps / seconds


def parameters(case: str) -> int:
    """How many numbers the meta-gradient all-reduce carries for `case` (its trainable parameters)."""
    from polyskill.recipes import kind_of, recipe_from_dict

    recipe = recipe_from_dict({**BASE, **CASES[case]})
    return sum(p.numel() for p in kind_of(recipe).model(recipe).parameters() if p.requires_grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--meta-batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(
        f"global meta-batch {args.meta_batch}, {args.steps} steps, median of {args.repeats} runs, "
        f"{os.cpu_count()} cores"
    )
    print(f"{'learner':10s} {'1 proc steps/s':>15s} {'2 procs steps/s':>16s} {'speed-up':>9s} {'all-reduce/step':>16s}")
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            rates = {1: [], 2: []}
            for _ in range(args.repeats):
                for nproc in (1, 2):
                    rates[nproc].append(steps_per_second(Path(tmp), case, nproc, args.steps, args.meta_batch))
            one, two = statistics.median(rates[1]), statistics.median(rates[2])
            mib = 4 * parameters(case) / 2**20
            print(f"{case:10s} {one:15.2f} {two:16.2f} {two / one:9.2f} {mib:13.3f} MiB")


if __name__ == "__main__":
    main()
