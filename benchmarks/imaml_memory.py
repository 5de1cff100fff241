"""iMAML against second-order MAML: the most bytes held at once by tensors autograd saves during one
`meta_backward`, and its time, at 1, 4 and 16 inner steps (Conv4-64 on 28x28 5-way 1-shot tasks, one query per
class, meta-batch 8, one thread). iMAML's inner loop builds no graph, so its memory should not grow with steps.

    python benchmarks/imaml_memory.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_imaml import peak_saved_bytes  # the measurement the suite's memory test uses

from polyskill.data.episodes import TaskBatch
from polyskill.meta import IMAML, MAML
from polyskill.nn import Conv4


def main() -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(5).repeat(8, 1)
    batch = TaskBatch(
        torch.randn(8, 5, 1, 28, 28, generator=g), labels, torch.randn(8, 5, 1, 28, 28, generator=g), labels, 5
    )
    learners = {
        "imaml": lambda steps: IMAML(Conv4(out_features=5), inner_lr=0.1, inner_steps=steps, lam=2.0, vectorize="loop"),
        "maml": lambda steps: MAML(Conv4(out_features=5), inner_lr=0.1, inner_steps=steps, vectorize="loop"),
    }
    print("inner steps | learner | peak saved tensors | time per meta-step")
    for steps in (1, 4, 16):
        for name, make in learners.items():
            torch.manual_seed(0)
            algo = make(steps)
            peak = peak_saved_bytes(lambda algo=algo: algo.meta_backward(batch))
            start = time.perf_counter()
            algo.meta_backward(batch)
            print(f"{steps} | {name} | {peak / 2**20:.1f} MiB | {time.perf_counter() - start:.2f} s", flush=True)


if __name__ == "__main__":
    main()
