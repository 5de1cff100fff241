"""How well a trained task-conditioned run's task embeddings z (and its attention over the skill slots) tell
the function families of multimodal regression apart: nearest-centroid and linear-probe accuracy on held-out
tasks, and which slot each family reads most.

    python scripts/task_embeddings.py runs/multimodal/task-conditioned-5 --tasks 2000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from polyskill.data.multimodal import FAMILIES
from polyskill.errors import PolyskillError
from polyskill.recipes.kinds.regression import tasks
from polyskill.recipes.runner import trained_model


def accuracies(
    features: torch.Tensor, family: torch.Tensor, test: torch.Tensor, test_family: torch.Tensor, families: int
) -> tuple[float, float]:
    """Nearest-centroid and ridge linear-probe accuracy of predicting the family from the features."""
    centroids = torch.stack([features[family == f].mean(0) for f in range(families)])
    nearest = (torch.cdist(test, centroids).argmin(1) == test_family).double().mean().item()
    design = torch.cat([features, torch.ones(len(features), 1)], 1).double()
    onehot = torch.nn.functional.one_hot(family, families).double()
    probe = torch.linalg.solve(
        design.T @ design + 1e-3 * torch.eye(design.shape[1], dtype=design.dtype), design.T @ onehot
    )
    test_design = torch.cat([test, torch.ones(len(test), 1)], 1).double()
    linear = ((test_design @ probe).argmax(1) == test_family).double().mean().item()
    return nearest, linear


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--tasks", type=int, default=2000)
    args = parser.parse_args()
    try:
        recipe, algo = trained_model(args.run)
    except PolyskillError as exc:
        print(f"task_embeddings: {exc}", file=sys.stderr)
        return 2
    sampler = tasks(recipe, "test", 1, recipe.episodes.shot, 0, recipe.eval.seed)
    if not hasattr(sampler, "labelled") or algo.encoder is None:
        print("task_embeddings: needs a task-conditioned run with an encoder on multimodal regression", file=sys.stderr)
        return 2
    algo.eval()
    rows = {}
    for name, seed in (("fit", 11), ("test", 12)):
        batch, family = sampler.labelled(args.tasks, seed)
        with torch.no_grad():
            z = algo.embed_tasks(batch.support_x, batch.support_y)
            attention = algo.memory.attention(z) if algo.memory is not None else None
        rows[name] = (z, attention, family)
    families = sampler.modes
    print(
        f"{args.run}: {families} families, {args.tasks} tasks to fit, {args.tasks} to test "
        f"(chance {100 / families:.0f}%)"
    )
    (z, a, f), (zt, at, ft) = rows["fit"], rows["test"]
    nearest, linear = accuracies(z, f, zt, ft, families)
    print(f"task embedding z: nearest centroid {100 * nearest:.1f}%, linear probe {100 * linear:.1f}%")
    if a is not None:
        nearest, linear = accuracies(a, f, at, ft, families)
        print(f"slot attention A: nearest centroid {100 * nearest:.1f}%, linear probe {100 * linear:.1f}%")
        for k in range(families):
            mean = a[f == k].mean(0)
            print(f"  {FAMILIES[k]:>9}: mean attention " + " ".join(f"{v:.2f}" for v in mean.tolist()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
