"""Every transductive and feature-based learner on one embedding: a Conv4-32 trained for 300 ProtoNet steps
(20-way 1-shot episodes on half of Omniglot's training classes), then tested on 5-way 1- and 5-shot episodes of
`vinyals/val` (15 queries per class; 200 episodes, 30 for fine-tuning the whole network).

    OMP_NUM_THREADS=1 python scripts/transductive_omniglot.py
"""

from __future__ import annotations

import time

import torch

from polyskill.data import EpisodeSampler, omniglot
from polyskill.eval import few_shot
from polyskill.meta import ALGORITHMS, PrototypicalNetworks
from polyskill.nn import Conv4
from polyskill.train import fit

LEARNERS = {
    "protonet": lambda b: PrototypicalNetworks(b),
    "simpleshot-un": lambda b: ALGORITHMS["simpleshot"](b, norm="un"),
    "simpleshot-l2n": lambda b: ALGORITHMS["simpleshot"](b, norm="l2n"),
    "simpleshot-cl2n": lambda b: ALGORITHMS["simpleshot"](b),
    "tim": lambda b: ALGORITHMS["tim"](b),
    "ptmap": lambda b: ALGORITHMS["ptmap"](b),
    "laplacianshot": lambda b: ALGORITHMS["laplacianshot"](b),
    "bdcspn": lambda b: ALGORITHMS["bdcspn"](b),
    "finetune-head": lambda b: ALGORITHMS["transductive_finetune"](b, finetune="head"),
    "finetune-all": lambda b: ALGORITHMS["transductive_finetune"](b),
}


def main() -> None:
    torch.manual_seed(0)
    train, val = omniglot("vinyals/train"), omniglot("vinyals/val")
    base = ALGORITHMS["simpleshot"](Conv4(hidden=32))  # ProtoNet's loss; also keeps SimpleShot's training mean
    start = time.time()
    sampler = EpisodeSampler(train.subset(range(0, 4112, 2)), way=20, shot=1, query=5, seed=0)
    fit(base, sampler, steps=300, lr=2e-3, progress=False)
    print(f"trained 300 steps in {time.time() - start:.0f} s", flush=True)
    state = base.state_dict()
    for shot in (1, 5):
        for name, make in LEARNERS.items():
            algo = make(Conv4(hidden=32))
            algo.load_state_dict(state, strict=False)
            start = time.time()
            result = few_shot(algo, val, way=5, shot=shot, query=15, episodes=30 if name == "finetune-all" else 200)
            print(f"{shot}-shot {name:16s} {result}  [{time.time() - start:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
