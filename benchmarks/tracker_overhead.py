"""What the run machinery costs a training run: steps per second of the same short ProtoNet run with no
trackers, with TensorBoard, and with TensorBoard and MLflow, each a fresh `polyskill train` process, in turn.

Run: POLYSKILL_DATA=../shared/data .venv/bin/python benchmarks/tracker_overhead.py --steps 2000 --repeats 3
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

RECIPE = {
    "data": {"dataset": "omniglot", "train": "vinyals/train", "val": "vinyals/val", "test": "vinyals/test"},
    "model": {"hidden": 32},
    "episodes": {"way": 5, "shot": 1, "query": 5},
    "validation": {"way": 5, "shot": None, "query": 5},
    "train": {"val_every": 500, "val_episodes": 20, "precision": "fp32"},
}
SETTINGS = {"none": [], "tensorboard": ["tensorboard"], "tensorboard+mlflow": ["tensorboard", "mlflow"]}


def one_run(folder: Path, name: str, steps: int, log_every: int, loggers: list[str]) -> float:
    """Training steps per second of one fresh run (the trainer's own clock: data loading excluded)."""
    recipe = {
        **RECIPE,
        "name": name,
        "train": {**RECIPE["train"], "steps": steps, "log_every": log_every, "loggers": loggers},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DO_NOT_TRACK": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "polyskill.cli",
            "train",
            str(path),
            "--out",
            str(folder / name),
            "--quiet",
            "--no-eval",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    summary = json.loads((folder / name / "summary.json").read_text())
    return steps / summary["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--log-every", type=int, default=10, help="records per step sent to every tracker")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name, loggers in SETTINGS.items():
                rates[name].append(one_run(Path(tmp), f"{name}-{repeat}", args.steps, args.log_every, loggers))
    base = statistics.median(rates["none"])
    print(f"{args.steps} steps, a record every {args.log_every} steps, median of {args.repeats} runs")
    print(f"{'trackers':20s} {'steps/s':>9s} {'vs none':>8s}")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:20s} {rate:9.1f} {rate / base:8.3f}")


if __name__ == "__main__":
    main()
