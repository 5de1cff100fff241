"""The multi-task data sets: IDX parsing, MultiFashion composites, School and Parkinsons splits, the synthetic truth.

Expected values are computed independently here: raw files re-read with gzip/struct, scipy and csv, composites
re-made with PIL's resize, statistics with numpy.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import struct

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from polyskill.data import (
    FILES,
    FileEntry,
    fashion_mnist,
    mtl_synthetic,
    multifashion,
    parkinsons,
    school,
    synthetic_groups,
    synthetic_relations,
    synthetic_weights,
)
from polyskill.data.fashion_mnist import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from polyskill.data.mtl_synthetic import TASKS
from polyskill.data.multifashion import _build as build_multifashion
from polyskill.data.multifashion import multifashion_pairs
from polyskill.data.parkinsons import FEATURES, parkinsons_rows, read_updrs
from polyskill.data.school import read_school, school_rows
from polyskill.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")


def _install(monkeypatch, root, name: str, content: bytes) -> None:
    """Put `content` at `name` under `root` and register its digest, so fetch() accepts it and the parser runs."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    monkeypatch.setitem(FILES, name, FileEntry(name, hashlib.sha256(content).hexdigest()))


def _idx(magic: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    return gzip.compress(struct.pack(f">I{len(shape)}I", magic, *shape) + payload, mtime=0)


# Fashion-MNIST -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fm_train(data_root):
    return fashion_mnist("train", data_root)


@pytest.fixture(scope="module")
def fm_test(data_root):
    return fashion_mnist("test", data_root)


def test_fashion_mnist_shapes_and_counts(fm_train, fm_test):
    for (images, labels), n in ((fm_train, 60000), (fm_test, 10000)):
        assert images.shape == (n, 28, 28) and images.dtype == torch.uint8
        assert labels.shape == (n,) and labels.dtype == torch.int64
        assert labels.min() == 0 and labels.max() == 9
        assert torch.equal(torch.bincount(labels), torch.full((10,), n // 10))


def test_fashion_mnist_matches_raw_bytes(fm_test, data_root):
    raw = gzip.decompress((data_root / "fashion-mnist/t10k-images-idx3-ubyte.gz").read_bytes())
    assert struct.unpack(">4I", raw[:16]) == (0x803, 10000, 28, 28)
    last = np.frombuffer(raw[16 + 9999 * 784 :], dtype=np.uint8).reshape(28, 28)
    assert np.array_equal(fm_test[0][9999].numpy(), last)
    labels = gzip.decompress((data_root / "fashion-mnist/t10k-labels-idx1-ubyte.gz").read_bytes())
    assert fm_test[1][:20].tolist() == list(labels[8:28])


@pytest.mark.parametrize(
    "content, words",
    [
        (_idx(0x802, (2, 28, 28), bytes(2 * 784)), "magic number"),
        (_idx(IMAGES_MAGIC, (2, 28, 28), bytes(784)), "needs"),
        (_idx(IMAGES_MAGIC, (2, 28, 28), bytes(3 * 784)), "needs"),
        (b"not a gzip file at all", "decompress"),
        (gzip.compress(b"\x00\x00", mtime=0), "too short"),
    ],
    ids=["bad-magic", "too-few-bytes", "too-many-bytes", "not-gzip", "too-short"],
)
def test_bad_idx_is_a_data_error_naming_the_file(tmp_path, content, words):
    path = tmp_path / "bad-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=words) as err:
        read_idx(path, IMAGES_MAGIC)
    assert str(path) in str(err.value)


def test_idx_of_wrong_size_through_the_loader(tmp_path, monkeypatch, data_root):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        _install(monkeypatch, tmp_path, f"fashion-mnist/{name}", (data_root / "fashion-mnist" / name).read_bytes())
    _install(monkeypatch, tmp_path, "fashion-mnist/t10k-labels-idx1-ubyte.gz", _idx(LABELS_MAGIC, (3,), bytes(3)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz"):
        fashion_mnist("test", tmp_path)


# MultiFashion --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mf(data_root):
    return {s: multifashion(s, data_root) for s in SPLITS}


def test_multifashion_shapes(mf):
    for split, n in (("train", 50000), ("val", 10000), ("test", 10000)):
        d = mf[split]
        assert d.tasks == ("left", "right") and d.classes == (10, 10) and not d.partitioned
        assert d.x.shape == (n, 1, 28, 28) and d.x.dtype == torch.float32
        assert d.y.shape == (n, 2) and d.y.dtype == torch.int64
        assert d.x.min() == 0 and d.x.max() == 1


def _by_hand(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    canvas = np.zeros((36, 36), dtype=np.float32)
    canvas[:28, :28] = left
    canvas[8:, 8:] = np.maximum(canvas[8:, 8:], right)
    return np.asarray(Image.fromarray(canvas, mode="F").resize((28, 28), Image.BILINEAR)) / 255


@pytest.mark.parametrize("split", SPLITS)
def test_multifashion_composites_and_labels_are_their_sources(mf, fm_train, fm_test, split):
    images, labels = fm_test if split == "test" else fm_train
    left, right = multifashion_pairs(split)
    d = mf[split]
    assert torch.equal(d.y[:, 0], labels[left]) and torch.equal(d.y[:, 1], labels[right])
    for i in (0, 1, len(d) // 2, len(d) - 1):
        expected = _by_hand(images[left[i]].numpy(), images[right[i]].numpy())
        assert np.abs(d.x[i, 0].numpy() - expected).max() <= 1 / 255


def test_multifashion_pairs(mf):
    pairs = {s: multifashion_pairs(s) for s in SPLITS}
    for left, right in pairs.values():
        assert (left != right).all()
        assert set(right.tolist()) <= set(left.tolist())  # partners come from the split's own pool
        assert len(set(left.tolist())) == len(left)  # each source image is a left item once
    train, val = set(pairs["train"][0].tolist()), set(pairs["val"][0].tolist())
    assert not train & val and train | val == set(range(60000))
    assert torch.equal(pairs["test"][0], torch.arange(10000))


def test_multifashion_is_deterministic_and_seeded(mf, data_root):
    fresh = build_multifashion.__wrapped__("test", data_root, 0, 10000)
    assert torch.equal(fresh[0], (mf["test"].x[:, 0] * 255).round().to(torch.uint8))
    for split in SPLITS:
        assert torch.equal(multifashion_pairs(split, seed=0)[1], multifashion_pairs(split, seed=0)[1])
        assert not torch.equal(multifashion_pairs(split, seed=1)[1], multifashion_pairs(split, seed=0)[1])
    assert set(multifashion_pairs("val", seed=1)[0].tolist()) != set(multifashion_pairs("val", seed=0)[0].tolist())
    assert torch.equal(multifashion_pairs("test", val_size=5000)[1], multifashion_pairs("test")[1])


def test_multifashion_bad_options():
    with pytest.raises(ConfigError):
        multifashion_pairs("dev")
    with pytest.raises(ConfigError):
        multifashion_pairs("train", val_size=60000)


# School --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def school_raw(data_root):
    mat = scipy.io.loadmat(data_root / "school/school.mat")
    x = np.concatenate([c.astype(np.float64) for c in mat["X"][0]])
    y = np.concatenate([c.reshape(-1).astype(np.float64) for c in mat["Y"][0]])
    sizes = np.array([len(c) for c in mat["Y"][0]])
    return x, y, sizes


def test_school_splits(data_root, school_raw):
    _, y_raw, sizes = school_raw
    assert len(sizes) == 139 and sizes.sum() == 15362
    owner = np.repeat(np.arange(139), sizes)
    rows = {s: school_rows(s, data_root).numpy() for s in SPLITS}
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(15362))  # disjoint and complete
    counts = {}
    for split in SPLITS:
        d = school(split, data_root)
        assert d.tasks[0] == "school001" and d.tasks[-1] == "school139" and d.classes == (0,) * 139
        assert d.partitioned and d.x.shape == (len(rows[split]), 28) and d.y.dtype == torch.float32
        assert np.array_equal(d.task.numpy(), owner[rows[split]])
        assert np.array_equal(d.y.numpy(), y_raw[rows[split]].astype(np.float32))  # raw exam scores
        counts[split] = d.counts().numpy()
        assert counts[split].min() >= 1  # every school in every split
    assert np.array_equal(counts["train"] + counts["val"] + counts["test"], sizes)
    assert np.array_equal(counts["test"], np.floor(0.25 * sizes + 0.5).astype(int))


def test_school_features_standardised_with_training_statistics(data_root, school_raw):
    x_raw = school_raw[0]
    train = x_raw[school_rows("train", data_root).numpy()]
    mean, std = train.mean(0), train.std(0)
    assert std[-1] == 0 and (std[:-1] > 0).all()  # the last column is the constant 1
    x_train = school("train", data_root).x.numpy()
    assert np.abs(x_train.mean(0)).max() < 1e-5
    assert np.allclose(x_train.std(0)[:-1], 1, atol=1e-4) and (x_train[:, -1] == 0).all()
    test_rows = school_rows("test", data_root).numpy()
    expected = (x_raw[test_rows] - mean) / np.where(std > 0, std, 1)
    assert np.allclose(school("test", data_root).x.numpy(), expected, atol=1e-5)


def test_school_seeds(data_root):
    assert torch.equal(school_rows("test", data_root, split_seed=0), school_rows("test", data_root, split_seed=0))
    assert not torch.equal(school_rows("test", data_root, split_seed=1), school_rows("test", data_root))
    # the test students depend on the seed and test_fraction only
    assert torch.equal(school_rows("test", data_root, val_fraction=0.2), school_rows("test", data_root))
    with pytest.raises(ConfigError):
        school("train", data_root, test_fraction=1.0)


def test_bad_school_files(tmp_path, monkeypatch):
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"\x00" * 300)
    wrong = tmp_path / "wrong.mat"
    scipy.io.savemat(wrong, {"X": np.zeros((5, 28)), "Y": np.zeros((5, 1))})
    for path in (garbage, wrong):
        with pytest.raises(DataError, match=str(path)):
            read_school(path)
    cells = np.empty((1, 2), dtype=object)
    cells[0, 0], cells[0, 1] = np.zeros((4, 28)), np.zeros((4, 27))
    scores = np.empty((1, 2), dtype=object)
    scores[0, 0], scores[0, 1] = np.zeros((4, 1)), np.zeros((4, 1))
    scipy.io.savemat(tmp_path / "cols.mat", {"X": cells, "Y": scores})
    _install(monkeypatch, tmp_path, "school/school.mat", (tmp_path / "cols.mat").read_bytes())
    with pytest.raises(DataError, match="school 2"):
        school("train", tmp_path)


# Parkinsons ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def updrs_raw(data_root):
    with open(data_root / "parkinsons/parkinsons_updrs.data", newline="") as f:
        rows = list(csv.DictReader(f))
    subject = np.array([int(r["subject#"]) for r in rows])
    features = np.array([[float(r[name]) for name in FEATURES] for r in rows])
    targets = np.array([[float(r["motor_UPDRS"]), float(r["total_UPDRS"])] for r in rows])
    return subject, features, targets


def test_parkinsons_file(data_root, updrs_raw):
    subject, features, _ = read_updrs(data_root / "parkinsons/parkinsons_updrs.data")
    assert len(subject) == 5875 and set(subject.tolist()) == set(range(1, 43))
    assert features.shape == (5875, 18) and FEATURES[:2] == ("age", "sex") and FEATURES[-1] == "PPE"
    assert np.array_equal(subject, updrs_raw[0]) and np.array_equal(features, updrs_raw[1])


def test_parkinsons_split_by_subject(data_root, updrs_raw):
    subject, features, targets = updrs_raw
    rows = {s: parkinsons_rows(s, data_root).numpy() for s in SPLITS}
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(5875))
    people = {s: set(subject[r].tolist()) for s, r in rows.items()}
    assert [len(people[s]) for s in SPLITS] == [30, 4, 8]
    assert not people["train"] & people["val"] and not people["train"] & people["test"]
    assert not people["val"] & people["test"]
    train = features[rows["train"]]
    for split in SPLITS:
        d = parkinsons(split, data_root)
        assert d.tasks == ("motor_UPDRS", "total_UPDRS") and not d.partitioned and d.x.shape == (len(rows[split]), 18)
        assert np.allclose(d.y.numpy(), targets[rows[split]], atol=1e-4)
        expected = (features[rows[split]] - train.mean(0)) / train.std(0)
        assert np.allclose(d.x.numpy(), expected, atol=1e-4)
    assert not np.array_equal(parkinsons_rows("test", data_root, split_seed=1).numpy(), rows["test"])


def test_parkinsons_per_subject_tasks(data_root, updrs_raw):
    subject, _, targets = updrs_raw
    sizes = np.bincount(subject)[1:]
    total = np.zeros(42, dtype=int)
    seen = []
    for split in SPLITS:
        d = parkinsons(split, data_root, tasks="subjects")
        rows = parkinsons_rows(split, data_root, tasks="subjects").numpy()
        seen.append(rows)
        assert d.tasks[0] == "subject01" and d.tasks[-1] == "subject42" and d.partitioned
        assert np.array_equal(d.task.numpy(), subject[rows] - 1)
        assert np.allclose(d.y.numpy(), targets[rows, 1], atol=1e-4)
        counts = d.counts().numpy()
        assert counts.min() >= 1
        if split == "test":
            assert np.array_equal(counts, np.floor(0.25 * sizes + 0.5).astype(int))
        total += counts
    assert np.array_equal(total, sizes)
    assert sorted(np.concatenate(seen).tolist()) == list(range(5875))
    with pytest.raises(ConfigError):
        parkinsons("train", data_root, tasks="recordings")


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda lines: [lines[0].replace("total_UPDRS", "total"), *lines[1:]], "total_UPDRS"),
        (lambda lines: [*lines[:3], lines[3].replace(",72,", ",seventy-two,", 1), *lines[4:]], "line 4"),
        (lambda lines: [*lines[:5], lines[5].rsplit(",", 1)[0], *lines[6:]], "line 6"),
        (lambda lines: lines[:1], "no recordings"),
    ],
)
def test_malformed_parkinsons_csv(tmp_path, monkeypatch, data_root, edit, words):
    lines = (data_root / "parkinsons/parkinsons_updrs.data").read_text().splitlines()[:50]
    assert ",72," in lines[3]
    _install(monkeypatch, tmp_path, "parkinsons/parkinsons_updrs.data", "\n".join(edit(lines)).encode())
    with pytest.raises(DataError, match=words):
        parkinsons("train", tmp_path)


# Synthetic -----------------------------------------------------------------------------------------------------


def _cosines(w: torch.Tensor) -> torch.Tensor:
    unit = w / w.norm(dim=1, keepdim=True)
    return unit @ unit.T


def test_synthetic_shapes_and_truth():
    d = mtl_synthetic("train", n_train=300, dim=8)
    assert d.x.shape == (300, 8) and d.y.shape == (300, 8) and d.tasks == TASKS and d.classes == (0,) * 8
    relations = synthetic_relations()
    assert torch.equal(relations, relations.T) and (relations.diag() == 1).all()
    assert synthetic_groups() == [["a1", "a2", "a3"], ["b1", "b2", "b3"], ["c1", "c2"]]
    group = {t: g for g, tasks in enumerate(synthetic_groups()) for t in tasks}
    for i, s in enumerate(TASKS):
        for j, t in enumerate(TASKS):
            expected = 1 if group[s] == group[t] else -1 if {group[s], group[t]} == {0, 2} else 0
            assert relations[i, j] == expected


def test_least_squares_recovers_the_planted_groups():
    d = mtl_synthetic("train", seed=3)
    fit = torch.linalg.lstsq(d.x.double(), d.y.double()).solution.T
    assert (fit - synthetic_weights(seed=3).double()).norm(dim=1).max() < 0.05
    cos = _cosines(fit)
    relations = synthetic_relations()
    off_diagonal = ~torch.eye(len(TASKS), dtype=torch.bool)
    assert cos[(relations == 1) & off_diagonal].min() > 0.8
    assert cos[relations == -1].max() < -0.8
    assert cos[relations == 0].abs().max() < 0.5


def test_synthetic_splits_share_tasks_and_differ_in_inputs():
    splits = {s: mtl_synthetic(s, seed=5, noise=0.0) for s in SPLITS}
    weights = synthetic_weights(seed=5)
    for d in splits.values():
        assert torch.allclose(d.y, d.x @ weights.T, atol=1e-5)
    assert not torch.equal(splits["val"].x[:10], splits["train"].x[:10])
    assert torch.equal(mtl_synthetic("val", seed=5).x, mtl_synthetic("val", seed=5, n_train=7).x)
    assert not torch.equal(synthetic_weights(seed=6), weights)
    noisy = mtl_synthetic("test", seed=5, noise=0.1)
    assert abs((noisy.y - noisy.x @ weights.T).std().item() - 0.1) < 0.01
    with pytest.raises(ConfigError):
        mtl_synthetic("train", n_train=0)
