"""Episode sampling: shapes, labels, disjointness, seeds, ragged classes and the saved stream state."""

from __future__ import annotations

import pytest
import torch

from polyskill.data import ClassDataset, EpisodeSampler, TaskBatch
from polyskill.errors import ConfigError


def _tagged(classes: int = 30, examples: int = 8, counts=None) -> ClassDataset:
    """Each example's single pixel stores its identity, class * 100 + example, so a batch can be decoded."""
    ids = torch.arange(classes).view(-1, 1) * 100 + torch.arange(examples).view(1, -1)
    return ClassDataset(ids.float().view(classes, examples, 1, 1, 1), [f"c{i}" for i in range(classes)], counts)


def _decode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ids = x.flatten(2).squeeze(-1).round().long()
    return ids // 100, ids % 100


def test_shapes_and_labels(omniglot_train):
    batch = EpisodeSampler(omniglot_train, way=20, shot=5, query=15, seed=0).sample(3)
    assert batch.support_x.shape == (3, 100, 1, 28, 28) and batch.query_x.shape == (3, 300, 1, 28, 28)
    assert batch.support_x.dtype == torch.float32 and batch.support_x.min() >= 0 and batch.support_x.max() <= 1
    assert torch.equal(batch.support_y[0], torch.arange(20).repeat_interleave(5))
    assert torch.equal(batch.query_y[2], torch.arange(20).repeat_interleave(15))
    assert len(batch) == 3 and batch.way == 20 and batch.shot == 5


def test_labels_follow_classes_and_examples_are_distinct():
    batch = EpisodeSampler(_tagged(), way=5, shot=2, query=3, seed=1).sample(50)
    s_cls, s_ex = _decode(batch.support_x)
    q_cls, q_ex = _decode(batch.query_x)
    for b in range(50):
        classes = s_cls[b].view(5, 2)[:, 0]
        assert len(set(classes.tolist())) == 5
        assert torch.equal(s_cls[b].view(5, 2), classes.view(5, 1).expand(5, 2))
        assert torch.equal(q_cls[b].view(5, 3), classes.view(5, 1).expand(5, 3))
        for c in range(5):
            used = s_ex[b].view(5, 2)[c].tolist() + q_ex[b].view(5, 3)[c].tolist()
            assert len(set(used)) == 5  # support and query never share an example


def test_every_class_and_example_gets_drawn():
    batch = EpisodeSampler(_tagged(), way=5, shot=1, query=1, seed=0).sample(400)
    cls, ex = _decode(torch.cat([batch.support_x, batch.query_x], 1))
    assert set(cls.flatten().tolist()) == set(range(30)) and set(ex.flatten().tolist()) == set(range(8))


def test_seed_reproducibility():
    data = _tagged()
    a, b, c = (EpisodeSampler(data, 5, 1, 2, seed=s).sample(4) for s in (7, 7, 8))
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    assert not torch.equal(a.support_x, c.support_x)


def test_fixed_episodes_do_not_depend_on_batching():
    sampler = EpisodeSampler(_tagged(), 5, 1, 2, seed=3)
    one = TaskBatch.cat(list(sampler.fixed(10, batch_size=1)))
    four = TaskBatch.cat(list(sampler.fixed(10, batch_size=4)))
    assert torch.equal(one.support_x, four.support_x) and torch.equal(one.query_x, four.query_x)
    assert torch.equal(sampler.episode(5).support_x[0], one.support_x[5])
    other = EpisodeSampler(_tagged(), 5, 1, 2, seed=4).episode(5)
    assert not torch.equal(other.support_x, sampler.episode(5).support_x)


def test_stream_state_round_trip():
    sampler = EpisodeSampler(_tagged(), 5, 1, 2, seed=0)
    sampler.sample(3)
    state = sampler.state_dict()
    expected = sampler.sample(2)
    resumed = EpisodeSampler(_tagged(), 5, 1, 2, seed=0)
    resumed.load_state_dict(state)
    assert torch.equal(resumed.sample(2).support_x, expected.support_x)


def test_stream_is_the_same_however_it_is_consumed():
    data = _tagged()
    whole = EpisodeSampler(data, 5, 1, 2, seed=0).sample(70)
    sampler = EpisodeSampler(data, 5, 1, 2, seed=0)
    pieces = TaskBatch.cat([sampler.sample(n) for n in (1, 3, 30, 1, 35)])
    assert torch.equal(whole.support_x, pieces.support_x) and torch.equal(whole.query_x, pieces.query_x)
    assert torch.equal(whole.query_y, pieces.query_y)
    assert torch.equal(whole.task_seeds, pieces.task_seeds) and len(set(whole.task_seeds.tolist())) == 70


def test_resume_in_the_middle_of_a_block():
    sampler = EpisodeSampler(_tagged(), 5, 1, 2, seed=0)
    for skipped in (0, 1, 5, 31, 32, 33):
        fresh = EpisodeSampler(_tagged(), 5, 1, 2, seed=0)
        fresh.sample(skipped) if skipped else None
        state = fresh.state_dict()
        expected = fresh.sample(40)
        resumed = EpisodeSampler(_tagged(), 5, 1, 2, seed=9)
        resumed.load_state_dict(state)
        again = resumed.sample(40)
        assert torch.equal(again.support_x, expected.support_x), skipped
        assert torch.equal(again.task_seeds, expected.task_seeds), skipped  # task seeds follow the stream
    assert sampler.sample(1).support_x.shape == (1, 5, 1, 1, 1)


def test_ragged_classes_never_draw_padding():
    counts = torch.tensor([8, 3, 5, 2, 8, 4, 6, 7, 3, 8])
    data = _tagged(10, 8, counts)
    batch = EpisodeSampler(data, way=4, shot=1, query=2, seed=0).sample(300)
    cls, ex = _decode(torch.cat([batch.support_x, batch.query_x], 1))
    assert (ex < counts[cls]).all()
    assert 3 not in set(cls.flatten().tolist())  # class 3 has 2 examples, fewer than shot + query


def test_not_enough_classes_is_a_config_error():
    with pytest.raises(ConfigError, match="needs 40 classes"):
        EpisodeSampler(_tagged(), way=40, shot=1, query=1)
    with pytest.raises(ConfigError, match="at least 12 examples"):
        EpisodeSampler(_tagged(), way=5, shot=2, query=10)
    with pytest.raises(ConfigError, match="shot"):
        EpisodeSampler(_tagged(), way=5, shot=0, query=1)


@pytest.mark.parametrize("way", [2, 3])  # 2*2 <= 6 draws with rejection, 3*3 > 6 takes random keys
def test_class_choice_is_uniform_over_ordered_subsets(way):
    import itertools
    import math

    draws = 30000
    batch = EpisodeSampler(_tagged(classes=6, examples=2), way=way, shot=1, query=0, seed=0).sample(draws)
    classes, _ = _decode(batch.support_x)
    counts = {}
    for row in classes.tolist():
        counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    outcomes = list(itertools.permutations(range(6), way))
    assert set(counts) == set(outcomes)
    expected = draws / len(outcomes)
    chi2 = sum((counts[o] - expected) ** 2 / expected for o in outcomes)
    dof = len(outcomes) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof)  # ~5 sigma above the chi-square mean
