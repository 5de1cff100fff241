"""Class batches for supervised pretraining: global labels, epochs without replacement, ragged classes, resume."""

from __future__ import annotations

import pytest
import torch

from polyskill.data.class_batches import ClassBatchSampler
from polyskill.data.classes import ClassDataset
from polyskill.errors import ConfigError

PAD = 255


def coded_dataset(counts: list[int], per_class: int = 6) -> ClassDataset:
    """Example (c, e) holds the pixels [c, e]; padding slots hold PAD, so every draw can be decoded."""
    classes = len(counts)
    data = torch.full((classes, per_class, 1, 2), PAD, dtype=torch.uint8)
    for c, n in enumerate(counts):
        for e in range(n):
            data[c, e, 0] = torch.tensor([c, e], dtype=torch.uint8)
    return ClassDataset(data, [f"c{c}" for c in range(classes)], torch.tensor(counts))


def decode(batch) -> list[tuple[int, int, int]]:
    """(class pixel, slot pixel, label) of every query example, tasks in order."""
    codes = (batch.query_x * 255).round().long().flatten(0, 1).view(-1, 2)
    return [(c, e, y) for (c, e), y in zip(codes.tolist(), batch.query_y.flatten().tolist(), strict=True)]


def stream(sampler: ClassBatchSampler, calls: list[int]) -> list[tuple[int, int, int]]:
    return [item for b in calls for item in decode(sampler.sample(b))]


def test_shapes_and_global_labels():
    data = coded_dataset([6, 6, 6, 6, 6])
    batch = ClassBatchSampler(data, batch_size=4, seed=0).sample(3)
    assert batch.support_x.shape == (3, 0, 1, 2) and batch.support_y.shape == (3, 0)
    assert batch.query_x.shape == (3, 4, 1, 2) and batch.query_y.shape == (3, 4)
    assert batch.way == 5 and batch.query_x.dtype == torch.float32 and batch.query_y.dtype == torch.long
    assert all(c == y for c, _, y in decode(batch))


def test_every_real_example_once_per_epoch_and_padding_never():
    counts = [6, 2, 5, 1, 4]
    sampler = ClassBatchSampler(coded_dataset(counts), batch_size=3, seed=1)
    epoch = sampler.epoch_size
    assert epoch == sum(counts)
    drawn = stream(sampler, [1] * 12)  # 36 draws: one epoch of 18, then a second, across batch boundaries
    real = sorted((c, e) for c, n in enumerate(counts) for e in range(n))
    for start in (0, epoch):
        assert sorted((c, e) for c, e, _ in drawn[start : start + epoch]) == real
    assert all(c == y and c != PAD for c, _, y in drawn)
    assert drawn[:epoch] != drawn[epoch:]  # reshuffled each epoch


def test_seeds_and_consumption():
    data = coded_dataset([6] * 7)
    same = [stream(ClassBatchSampler(data, 5, seed=3), [1, 1, 1, 1]) for _ in range(2)]
    assert same[0] == same[1]
    assert stream(ClassBatchSampler(data, 5, seed=3), [4]) == same[0]  # independent of how it is consumed
    assert stream(ClassBatchSampler(data, 5, seed=4), [4]) != same[0]


@pytest.mark.parametrize("before", [1, 4, 6, 9])  # mid-epoch, at the epoch boundary (6 * 4 = 24 = 3 epochs of 8)
def test_resume_continues_the_stream_exactly(before):
    data = coded_dataset([3, 1, 4])
    sampler = ClassBatchSampler(data, batch_size=4, seed=2)
    stream(sampler, [1] * before)
    state = sampler.state_dict()
    expected = stream(sampler, [1, 2, 3])
    resumed = ClassBatchSampler(data, batch_size=4, seed=99)
    resumed.load_state_dict(state)
    assert stream(resumed, [1, 2, 3]) == expected


def test_bad_batch_size_is_a_config_error():
    with pytest.raises(ConfigError):
        ClassBatchSampler(coded_dataset([2, 2]), batch_size=0)


def test_omniglot_class_batches(omniglot_val):
    batch = ClassBatchSampler(omniglot_val, batch_size=16, seed=0).sample(2)
    assert batch.query_x.shape == (2, 16, 1, 28, 28) and batch.way == omniglot_val.num_classes
    assert float(batch.query_x.min()) >= 0.0 and float(batch.query_x.max()) <= 1.0
    y, x = batch.query_y[0, 0], batch.query_x[0, 0]
    assert any(torch.allclose(x, image.float() / 255) for image in omniglot_val.data[y])


def test_trainer_resumes_a_class_batch_run_exactly(omniglot_val, tmp_path):
    """Three steps, a restart, three more: the same weights as six steps in one go."""
    from polyskill.meta.baseline import Baseline
    from polyskill.nn import Conv4
    from polyskill.train import fit

    data = omniglot_val.subset(range(10))

    def run(out, steps, resume=False):
        torch.manual_seed(0)
        algo = Baseline(Conv4(hidden=8), num_classes=10, batch_size=8)
        fit(algo, ClassBatchSampler(data, 8, seed=0), out=out, steps=steps, val_every=3, resume=resume, progress=False)
        return algo.state_dict()

    straight = run(tmp_path / "straight", 6)
    run(tmp_path / "split", 3)
    resumed = run(tmp_path / "split", 6, resume=True)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
