"""Task selection on School: for target schools, pre-train on the k schools ranked most similar to the target
(by the task-conditioned learner's embeddings, or by gradient affinity at its meta-learned initialisation),
fine-tune on the target's training students and predict its test students; compare with k schools drawn at
random, with all other schools, and with the target alone.

    python scripts/task_selection.py runs/school-task-conditioned --targets 20 --k 10 --random 5

Prints pooled explained variance over the targets' test students per selection, and how often each ranking
beats the mean of the random draws target by target.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from polyskill.errors import PolyskillError
from polyskill.mtl.metrics import regression_metrics
from polyskill.nn.mlp import MLP
from polyskill.recipes.build import tasks
from polyskill.recipes.mtl_build import mtl_data
from polyskill.recipes.run import trained_algorithm
from polyskill.train.task_selection import rank_by_embedding, rank_by_gradient, top_k


def fit(x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, start: torch.nn.Module | None = None,
        seed: int = 0) -> torch.nn.Module:
    """An MLP 28-64-1 trained by full-batch Adam on (x, y) from `start` (else a seeded fresh one)."""
    torch.manual_seed(seed)
    model = copy.deepcopy(start) if start is not None else MLP([x.shape[1], 64, 1])
    optimizer = torch.optim.Adam(model.parameters(), lr)
    for _ in range(steps):
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a trained school-task-conditioned run")
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--random", type=int, default=5, help="random draws of k schools per target")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        recipe, algo = trained_algorithm(args.run)
    except PolyskillError as exc:
        print(f"task_selection: {exc}", file=sys.stderr)
        return 2
    algo.eval()
    train = tasks(recipe, "train", 1, 1, 0, 0)
    test = mtl_data(recipe, "test")
    schools = len(train.rows)
    g = torch.Generator().manual_seed(args.seed)
    targets = torch.randperm(schools, generator=g)[:args.targets].tolist()
    data = [(train.data.x[r], train.targets(r)) for r in train.rows]
    predictions: dict[str, list[torch.Tensor]] = {}
    truths: list[torch.Tensor] = []
    wins = {"embedding": 0, "gradient": 0}
    started = time.perf_counter()

    def evaluate(name: str, chosen: list[int], target: int, seed: int) -> torch.Tensor:
        x = torch.cat([data[c][0] for c in chosen])
        y = torch.cat([data[c][1] for c in chosen])
        model = fit(x, y, args.pretrain_steps, 3e-3, seed=seed)
        model = fit(data[target][0], data[target][1], args.finetune_steps, 1e-3, start=model, seed=seed)
        rows = torch.nonzero(test.task == target).flatten()
        with torch.no_grad():
            out = model(test.x[rows]).reshape(-1).double() * train.std + train.mean
        predictions.setdefault(name, []).append(out)
        return F.mse_loss(out, test.y[rows].double())

    for target in targets:
        candidates = [s for s in range(schools) if s != target]
        others = [data[s] for s in candidates]
        by_embedding, _ = rank_by_embedding(algo.embed_tasks, data[target], others)
        by_gradient, _ = rank_by_gradient(algo.backbone, F.mse_loss, data[target], others)
        errors = {"embedding": evaluate("embedding", [candidates[i] for i in top_k(by_embedding, args.k)], target, 0),
                  "gradient": evaluate("gradient", [candidates[i] for i in top_k(by_gradient, args.k)], target, 0)}
        random_errors = []
        for draw in range(args.random):
            pick = torch.randperm(len(candidates), generator=g)[:args.k].tolist()
            random_errors.append(evaluate(f"random#{draw}", [candidates[i] for i in pick], target, 0))
        for name in wins:
            wins[name] += int(errors[name] < torch.stack(random_errors).mean())
        evaluate("all other schools", candidates, target, 0)
        model = fit(data[target][0], data[target][1], args.pretrain_steps, 3e-3)
        rows = torch.nonzero(test.task == target).flatten()
        with torch.no_grad():
            out = model(test.x[rows]).reshape(-1).double() * train.std + train.mean
        predictions.setdefault("target alone", []).append(out)
        truths.append(test.y[rows].double())
    truth = torch.cat(truths)
    print(f"{args.targets} target schools ({truth.numel()} test students), k = {args.k}, "
          f"{args.random} random draws, {time.perf_counter() - started:.0f} s")
    print("| pre-trained on | explained variance % | RMSE | beats the random draws' mean on |")
    print("|---|---|---|---|")
    randoms = [regression_metrics(torch.cat(v), truth) for n, v in predictions.items() if n.startswith("random#")]
    for name in ("embedding", "gradient", "all other schools", "target alone"):
        metrics = regression_metrics(torch.cat(predictions[name]), truth)
        label = {"embedding": f"top {args.k} by task embedding", "gradient": f"top {args.k} by gradient affinity"}
        beats = f"{wins[name]} / {args.targets} targets" if name in wins else ""
        print(f"| {label.get(name, name)} | {100 * metrics['explained_variance']:.2f} | {metrics['rmse']:.3f} | {beats} |")
    ev = torch.tensor([m["explained_variance"] for m in randoms]) * 100
    rmse = torch.tensor([m["rmse"] for m in randoms])
    print(f"| {args.k} at random ({len(randoms)} draws: mean +- sd) | {ev.mean():.2f} +- {ev.std():.2f} | "
          f"{rmse.mean():.3f} +- {rmse.std():.3f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
