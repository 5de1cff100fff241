"""Contrastive metric learning: both losses against brute-force loops, hard mining, gradients, the algorithm's
loss and prototype predictions, and real learning on Omniglot."""

from __future__ import annotations

import itertools

import pytest
import torch

from polyskill.data import EpisodeSampler
from polyskill.data.class_batches import ClassBatchSampler
from polyskill.errors import ConfigError
from polyskill.eval import few_shot
from polyskill.meta import PrototypicalNetworks
from polyskill.meta.contrastive import ContrastiveEmbedding, pairwise_contrastive_loss, triplet_loss
from polyskill.nn import Conv4
from polyskill.train import fit


def random_tasks(tasks: int = 2, size: int = 9, dim: int = 3, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(tasks, size, dim, generator=g, dtype=torch.float64)
    return z, torch.randint(classes, (tasks, size), generator=g)


def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).sum().sqrt()


def brute_pairwise(z, labels, margin, weight, squared):
    same, different = [], []
    for b in range(z.shape[0]):
        for i, j in itertools.combinations(range(z.shape[1]), 2):
            d = dist(z[b, i], z[b, j])
            if labels[b, i] == labels[b, j]:
                same.append(d**2 if squared else d)
            else:
                different.append(torch.clamp(margin - d, min=0) ** (2 if squared else 1))
    return sum(same) / len(same) + weight * sum(different) / len(different)


def brute_triplet_all(z, labels, margin):
    losses = []
    for b in range(z.shape[0]):
        for a, p, n in itertools.permutations(range(z.shape[1]), 3):
            if labels[b, a] == labels[b, p] and labels[b, a] != labels[b, n]:
                loss = dist(z[b, a], z[b, p]) - dist(z[b, a], z[b, n]) + margin
                if loss > 0:
                    losses.append(loss)
    return sum(losses) / len(losses)


def brute_triplet_hard(z, labels, margin):
    losses = []
    for b in range(z.shape[0]):
        for a in range(z.shape[1]):
            positives = [p for p in range(z.shape[1]) if p != a and labels[b, p] == labels[b, a]]
            negatives = [n for n in range(z.shape[1]) if labels[b, n] != labels[b, a]]
            if positives and negatives:
                p = max(positives, key=lambda i: float(dist(z[b, a], z[b, i]).detach()))
                n = min(negatives, key=lambda i: float(dist(z[b, a], z[b, i]).detach()))
                losses.append(torch.clamp(dist(z[b, a], z[b, p]) - dist(z[b, a], z[b, n]) + margin, min=0))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("squared", [False, True])
def test_pairwise_loss_matches_loops(squared):
    z, labels = random_tasks()
    loss = pairwise_contrastive_loss(z, labels, margin=2.0, weight=0.7, squared=squared)
    assert torch.allclose(loss, brute_pairwise(z, labels, 2.0, 0.7, squared), atol=1e-6)
    single = pairwise_contrastive_loss(z[0], labels[0], margin=2.0, weight=0.7, squared=squared)
    assert torch.allclose(single, brute_pairwise(z[:1], labels[:1], 2.0, 0.7, squared), atol=1e-6)


def test_triplet_losses_match_loops():
    z, labels = random_tasks()
    assert torch.allclose(triplet_loss(z, labels, 1.5, "all"), brute_triplet_all(z, labels, 1.5), atol=1e-6)
    assert torch.allclose(triplet_loss(z, labels, 1.5, "hard"), brute_triplet_hard(z, labels, 1.5), atol=1e-6)


def test_hard_mining_takes_the_farthest_positive_and_nearest_negative():
    """Equal gradients with the loops, which choose the pairs by explicit argmax / argmin."""
    z, labels = random_tasks(size=10, seed=3)
    ours, theirs = z.clone().requires_grad_(), z.clone().requires_grad_()
    triplet_loss(ours, labels, 1.0, "hard").backward()
    brute_triplet_hard(theirs, labels, 1.0).backward()
    assert torch.allclose(ours.grad, theirs.grad, atol=1e-6)
    # on a line [0, 1, 5 | 6]: the anchors at 0, 1, 5 take positives 5, 5, 0 and the negative 6; 6 has no positive
    line, labels = torch.tensor([[0.0], [1.0], [5.0], [6.0]]), torch.tensor([0, 0, 0, 1])
    expected = ((5 - 6 + 2) + (4 - 5 + 2) + (5 - 1 + 2)) / 3
    assert torch.isclose(triplet_loss(line, labels, margin=2.0, mining="hard"), torch.tensor(expected))


def test_gradients_flow_and_stay_finite_at_zero_distance():
    z = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.5, 0.0], [3.0, 4.0]], requires_grad=True)  # two identical points
    labels = torch.tensor([0, 0, 1, 1])
    for loss in (
        pairwise_contrastive_loss(z, labels, 1.0, 1.0),
        triplet_loss(z, labels, 1.0, "all"),
        triplet_loss(z, labels, 1.0, "hard"),
    ):
        (grad,) = torch.autograd.grad(loss, z)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_no_pairs_give_zero_not_nan():
    z = torch.randn(3, 4, requires_grad=True)
    assert pairwise_contrastive_loss(z, torch.zeros(3, dtype=torch.long)) > 0  # only positives
    assert triplet_loss(z, torch.zeros(3, dtype=torch.long)) == 0  # no negative anywhere
    assert triplet_loss(z, torch.arange(3), mining="hard") == 0  # no positive anywhere


@pytest.mark.parametrize("loss", ["pairwise", "triplet"])
def test_meta_loss_applies_the_loss_within_each_task(omniglot_val, loss):
    torch.manual_seed(0)
    algo = ContrastiveEmbedding(Conv4(hidden=8), loss=loss, margin=2.0).eval()
    batch = EpisodeSampler(omniglot_val, 4, 2, 3, seed=0).sample(2)
    value, metrics = algo.meta_loss(batch)
    z = torch.stack([algo.backbone(torch.cat([batch.support_x[b], batch.query_x[b]])) for b in range(2)]).double()
    labels = torch.cat([batch.support_y, batch.query_y], dim=1)
    expected = brute_pairwise(z, labels, 2.0, 1.0, False) if loss == "pairwise" else brute_triplet_all(z, labels, 2.0)
    assert torch.allclose(value.double(), expected, atol=1e-4)
    with torch.no_grad():
        proto_acc = (algo.predict(batch).argmax(-1) == batch.query_y).float().mean()
    assert torch.isclose(metrics["acc"], proto_acc) and not metrics["loss"].requires_grad
    value.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in algo.parameters())


def test_class_batches_train_without_accuracy(omniglot_val):
    algo = ContrastiveEmbedding(Conv4(hidden=8), loss="triplet", mining="hard")
    loss, metrics = algo.meta_loss(ClassBatchSampler(omniglot_val.subset(range(4)), batch_size=12).sample(2))
    assert set(metrics) == {"loss"} and loss > 0


def test_predictions_are_prototypes(omniglot_val):
    torch.manual_seed(0)
    algo = ContrastiveEmbedding(Conv4(hidden=16)).eval()
    batch = EpisodeSampler(omniglot_val, 5, 2, 3, seed=0).sample(2)
    with torch.no_grad():
        ours = algo.predict(batch)
        protonet = PrototypicalNetworks(algo.backbone).predict(batch)
        per_task = torch.stack([algo.adapt(batch.support(i))(batch.query_x[i]) for i in range(2)])
    assert torch.allclose(ours, protonet) and torch.allclose(ours, per_task, atol=1e-3)


def test_bad_options_are_config_errors():
    for options in ({"loss": "hinge"}, {"mining": "semi"}, {"margin": 0.0}):
        with pytest.raises(ConfigError):
            ContrastiveEmbedding(Conv4(hidden=8), **options)


@pytest.mark.parametrize("loss, mining", [("pairwise", "all"), ("triplet", "hard")])
def test_contrastive_embedding_learns_omniglot_prototypes(omniglot_train, omniglot_val, loss, mining):
    """A short real run on 20-class episodes (6 examples a class), judged 5-way 1-shot on unseen characters."""
    torch.manual_seed(0)
    subset = omniglot_train.subset(range(0, 4112, 4))  # 1028 classes
    algo = ContrastiveEmbedding(Conv4(hidden=32), loss=loss, mining=mining)
    untrained = few_shot(algo, omniglot_val, way=5, shot=1, query=5, episodes=100, seed=0).accuracy
    fit(algo, EpisodeSampler(subset, way=20, shot=1, query=5, seed=0), steps=100, lr=2e-3, progress=False)
    trained = few_shot(algo, omniglot_val, way=5, shot=1, query=5, episodes=100, seed=0)
    assert trained.accuracy > 0.6, trained  # chance is 20%; observed 0.698 pairwise, 0.823 triplet on 2026-12-03
    assert trained.accuracy > untrained + 0.1
