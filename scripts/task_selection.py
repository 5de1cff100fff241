"""Task selection: for target tasks, pre-train on the k candidate tasks ranked most similar to the target (by a
task-conditioned run's embeddings, or by gradient affinity at its meta-learned initialisation), fine-tune on the
target's support set and predict its held-out examples; compare with k candidates drawn at random, with all of
them, and with the target alone.

    python scripts/task_selection.py runs/school-task-conditioned --targets 40 --k 10 --random 5
    python scripts/task_selection.py runs/multimodal/task-conditioned-5 --targets 40 --k 20 --widths 64,64

School (a regression run over its schools): targets are schools, candidates the other schools' training students.
Multimodal regression: targets are test tasks (their K support points, 100 query points), candidates a pool of
tasks with 20 points each; the table then also says how often the chosen tasks share the target's family.
Prints explained variance pooled over the targets' held-out examples, and how often each ranking beats the mean
of the random draws target by target.
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
from polyskill.eval.multitask import regression_metrics
from polyskill.nn.mlp import MLP
from polyskill.recipes.kinds.datasets import multitask_data
from polyskill.recipes.kinds.regression import RegressionRecipe, tasks
from polyskill.recipes.runner import trained_model
from polyskill.train.task_selection import rank_by_embedding, rank_by_gradient, top_k


def fit(
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    lr: float,
    widths: list[int],
    start: torch.nn.Module | None = None,
    seed: int = 0,
) -> torch.nn.Module:
    """An MLP with hidden `widths` trained by full-batch Adam on (x, y) from `start` (else a seeded fresh one)."""
    torch.manual_seed(seed)
    model = copy.deepcopy(start) if start is not None else MLP([x.shape[1], *widths, 1])
    optimizer = torch.optim.Adam(model.parameters(), lr)
    for _ in range(steps):
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
    return model


Task = tuple[torch.Tensor, torch.Tensor]


def school_problem(recipe, args, g: torch.Generator):
    """Targets (support, test x, test y in raw units), candidate pools, the target scale and no families."""
    train = tasks(recipe, "train", 1, 1, 0, 0)
    test = multitask_data(recipe.data, "test")
    data = [(train.data.x[r], train.targets(r)) for r in train.rows]
    targets, pools = [], []
    for t in torch.randperm(len(data), generator=g)[: args.targets].tolist():
        rows = torch.nonzero(test.task == t).flatten()
        targets.append((data[t], test.x[rows], test.y[rows].double()))
        pools.append([data[s] for s in range(len(data)) if s != t])
    return targets, pools, (train.mean, train.std), None


def multimodal_problem(recipe, args, g: torch.Generator):
    """Targets from the test stream, one shared pool of candidate tasks, unit scale, and the families."""
    sampler = tasks(recipe, "test", 1, recipe.episodes.shot, 100, recipe.eval.seed)
    batch, family = sampler.labelled(args.targets, seed=args.seed)
    pool_sampler = type(sampler)(20, 0, modes=sampler.modes, seed=sampler.seed + 7)
    pool_batch, pool_family = pool_sampler.labelled(args.candidates, seed=args.seed)
    pool = [(pool_batch.support_x[i], pool_batch.support_y[i]) for i in range(args.candidates)]
    targets = [
        ((batch.support_x[i], batch.support_y[i]), batch.query_x[i], batch.query_y[i].reshape(-1).double())
        for i in range(args.targets)
    ]
    return targets, [pool] * args.targets, (0.0, 1.0), (family, pool_family)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a trained task-conditioned run (School as tasks, or multimodal)")
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--random", type=int, default=5, help="random draws of k candidates per target")
    parser.add_argument("--candidates", type=int, default=200, help="multimodal: the size of the candidate pool")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=30)
    parser.add_argument("--widths", default="64", help="hidden widths of the pre-trained MLP, e.g. 64,64")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    try:
        recipe, algo = trained_model(args.run)
        if getattr(algo, "encoder", None) is None or not isinstance(recipe, RegressionRecipe):
            raise PolyskillError("needs a task-conditioned run with an encoder, on School as tasks or multimodal")
    except PolyskillError as exc:
        print(f"task_selection: {exc}", file=sys.stderr)
        return 2
    algo.eval()
    g = torch.Generator().manual_seed(args.seed)
    problem = multimodal_problem if recipe.data.dataset == "multimodal" else school_problem
    targets, pools, (mean, std), families = problem(recipe, args, g)
    predictions: dict[str, list[torch.Tensor]] = {}
    wins = {"embedding": 0, "gradient": 0}
    same_family = {"embedding": 0.0, "gradient": 0.0, "random": 0.0}
    started = time.perf_counter()

    def evaluate(name: str, pretrain: list[Task], target: tuple, seed: int = 0) -> torch.Tensor:
        (sx, sy), qx, qy = target
        model = None
        if pretrain:
            model = fit(
                torch.cat([x for x, _ in pretrain]),
                torch.cat([y for _, y in pretrain]),
                args.pretrain_steps,
                3e-3,
                widths,
                seed=seed,
            )
        model = fit(
            sx,
            sy,
            args.finetune_steps if pretrain else args.pretrain_steps,
            1e-3 if pretrain else 3e-3,
            widths,
            start=model,
            seed=seed,
        )
        with torch.no_grad():
            out = model(qx).reshape(-1).double() * std + mean
        predictions.setdefault(name, []).append(out)
        return F.mse_loss(out, qy)

    for index, (target, pool) in enumerate(zip(targets, pools, strict=True)):
        by_embedding, _ = rank_by_embedding(algo.embed_tasks, target[0], pool)
        by_gradient, _ = rank_by_gradient(algo.backbone, F.mse_loss, target[0], pool)
        chosen = {"embedding": top_k(by_embedding, args.k), "gradient": top_k(by_gradient, args.k)}
        errors = {name: evaluate(name, [pool[i] for i in picks], target) for name, picks in chosen.items()}
        random_errors = []
        for draw in range(args.random):
            pick = torch.randperm(len(pool), generator=g)[: args.k].tolist()
            random_errors.append(evaluate(f"random#{draw}", [pool[i] for i in pick], target))
            if families is not None:
                same_family["random"] += float((families[1][pick] == families[0][index]).double().mean()) / args.random
        for name in wins:
            wins[name] += int(errors[name] < torch.stack(random_errors).mean())
            if families is not None:
                same_family[name] += float((families[1][chosen[name]] == families[0][index]).double().mean())
        evaluate("all candidates", pool, target)
        evaluate("target alone", [], target)
    truth = torch.cat([qy for _, _, qy in targets])
    print(
        f"{args.run}: {len(targets)} targets ({truth.numel()} held-out examples), k = {args.k}, "
        f"{args.random} random draws, {time.perf_counter() - started:.0f} s"
    )
    family_column = families is not None
    print(
        "| pre-trained on | explained variance % | RMSE | beats the random draws' mean on |"
        + (" chosen tasks of the target's family |" if family_column else "")
    )
    print("|---|---|---|---|" + ("---|" if family_column else ""))
    labels = {"embedding": f"top {args.k} by task embedding", "gradient": f"top {args.k} by gradient affinity"}
    for name in ("embedding", "gradient", "all candidates", "target alone"):
        metrics = regression_metrics(torch.cat(predictions[name]), truth)
        beats = f"{wins[name]} / {len(targets)} targets" if name in wins else ""
        share = (
            f" {100 * same_family[name] / len(targets):.0f}% |"
            if family_column and name in wins
            else (" |" if family_column else "")
        )
        print(
            f"| {labels.get(name, name)} | {100 * metrics['explained_variance']:.2f} | {metrics['rmse']:.3f} | "
            f"{beats} |{share}"
        )
    randoms = [regression_metrics(torch.cat(v), truth) for n, v in predictions.items() if n.startswith("random#")]
    ev = torch.tensor([m["explained_variance"] for m in randoms]) * 100
    rmse = torch.tensor([m["rmse"] for m in randoms])
    share = f" {100 * same_family['random'] / len(targets):.0f}% |" if family_column else ""
    print(
        f"| {args.k} at random ({len(randoms)} draws: mean +- sd) | {ev.mean():.2f} +- {ev.std():.2f} | "
        f"{rmse.mean():.3f} +- {rmse.std():.3f} | |{share}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
