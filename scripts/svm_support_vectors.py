"""How much of a MetaOptNet run's support set its head learns from: on fixed training episodes (5-way 15-shot, as
the Omniglot recipes train), the share of support points that are support vectors (some nonzero dual variable:
only they carry gradient from the query loss through W = X^T alpha) and the share at their bound C; for a ridge
head every point carries gradient, and the script says so. Also the learned logit scale.

    OMP_NUM_THREADS=1 python scripts/svm_support_vectors.py runs/papers/metaoptnet-svm [--episodes 50]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from polyskill.data import EpisodeSampler, omniglot
from polyskill.meta import MetaOptNet
from polyskill.meta.svm import svm_dual
from polyskill.recipes.runner import trained_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--shot", type=int, default=15)
    args = parser.parse_args()
    if args.episodes < 1 or args.shot < 1:
        parser.error("--episodes and --shot must be at least 1")
    _, algo = trained_model(args.run)
    if not isinstance(algo, MetaOptNet):
        raise SystemExit(f"{args.run} is not a MetaOptNet run")
    print(f"logit scale {float(algo.scale.detach()):.3f}")
    if algo.head != "svm":
        print("ridge head: every support point carries gradient")
        return
    algo.train()  # batch norm as in training
    sampler = EpisodeSampler(omniglot("vinyals/train"), way=5, shot=args.shot, query=5, seed=0)
    vectors = bound = 0.0
    with torch.no_grad():
        for batch in sampler.fixed(args.episodes, batch_size=1):
            x = algo.embed(batch.support_x).double()
            kernel = x @ x.transpose(1, 2) + algo.svm_eps * torch.eye(x.shape[1], dtype=x.dtype)
            alpha = svm_dual(kernel, batch.support_y, batch.way, algo.C, algo.svm_iterations, algo.svm_tol)
            own = (alpha * F.one_hot(batch.support_y, batch.way)).sum(-1)
            vectors += float((alpha.abs().amax(-1) > 1e-9).double().mean())
            bound += float((own > algo.C * (1 - 1e-9)).double().mean())
    print(
        f"{args.episodes} 5-way {args.shot}-shot training episodes: {100 * vectors / args.episodes:.1f}% of support "
        f"points are support vectors, {100 * bound / args.episodes:.1f}% at their bound C = {algo.C}"
    )


if __name__ == "__main__":
    main()
