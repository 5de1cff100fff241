"""The colour few-shot sets read from files generated here in each release's real format: miniImageNet (pickle and
csv + JPEG folder), tieredImageNet (PNG pickle and npz), CIFAR-FS (CIFAR-100 python pickles + split files) and
CUB-200-2011 (folder + index files); what a missing set says, malformed files, the restricted unpickler, and a
recipe trained end to end on a generated miniImageNet folder."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import pickle
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from polyskill.cli import main
from polyskill.data.cifar_fs import cifar_fs
from polyskill.data.cub import cub, split_classes
from polyskill.data.image_set_check import check_image_set
from polyskill.data.image_sets import source_key
from polyskill.data.mini_imagenet import mini_imagenet
from polyskill.data.registry import IMAGE_SETS
from polyskill.data.safe_pickle import load_pickle
from polyskill.data.tiered_imagenet import tiered_imagenet
from polyskill.errors import DataError

SIDE = 12


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Decoded caches go under this test's folder, whatever the environment says."""
    monkeypatch.setenv("POLYSKILL_CACHE", str(tmp_path / "cache"))


def _images(n: int, seed: int, side: int = SIDE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def _dump(path, obj, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _png(image: np.ndarray) -> np.ndarray:
    """A PNG as OpenCV's imencode returns it (the tieredImageNet pickles' items): uint8 [bytes, 1]."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8).reshape(-1, 1)


# miniImageNet


def _mini_pickle(root, split="train", classes=("n01", "n02", "n03"), per_class=5, seed=0, name=None):
    images = _images(len(classes) * per_class, seed)
    order = np.random.default_rng(seed).permutation(len(images))  # a class's images need not be contiguous
    class_dict = {c: order[i * per_class : (i + 1) * per_class].tolist() for i, c in enumerate(classes)}
    path = root / "mini-imagenet" / f"mini-imagenet-cache-{name or split}.pkl"
    _dump(path, {"image_data": images, "class_dict": class_dict})
    return images, class_dict


def test_mini_imagenet_pickle_classes_counts_and_pixels(tmp_path):
    images, class_dict = _mini_pickle(tmp_path)
    data = mini_imagenet("train", root=tmp_path, image_size=SIDE)
    assert data.names == ["n01", "n02", "n03"] and data.counts.tolist() == [5, 5, 5]
    assert data.data.shape == (3, 5, 3, SIDE, SIDE) and data.data.dtype == torch.uint8
    for c, name in enumerate(data.names):
        for e, i in enumerate(class_dict[name]):
            assert np.array_equal(data.data[c, e].permute(1, 2, 0).numpy(), images[i])
    small = mini_imagenet("train", root=tmp_path, image_size=6)
    assert small.data.shape == (3, 5, 3, 6, 6)
    # resized as Pillow's antialiased bilinear resizes it (within rounding)
    expected = np.asarray(Image.fromarray(images[class_dict["n01"][0]]).resize((6, 6), Image.Resampling.BILINEAR))
    assert np.abs(small.data[0, 0].permute(1, 2, 0).numpy().astype(int) - expected).max() <= 1


def test_mini_imagenet_validation_pickle_under_either_name(tmp_path):
    _mini_pickle(tmp_path, "val", classes=("v1", "v2"), name="validation")
    assert mini_imagenet("val", root=tmp_path, image_size=SIDE).names == ["v1", "v2"]


def _mini_csv(root, split="train", classes=("n01", "n02"), per_class=4, seed=0):
    folder = root / "mini-imagenet"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows, pixels = ["filename,label"], {}
    for c, label in enumerate(classes):
        for e, image in enumerate(_images(per_class, seed + c)):
            name = f"{label}{e:08d}.jpg"
            Image.fromarray(image).save(folder / "images" / name, quality=95)
            rows.append(f"{name},{label}")
            pixels[(c, e)] = np.asarray(Image.open(folder / "images" / name).convert("RGB"))
    (folder / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return pixels


def test_mini_imagenet_csv_and_jpeg_folder_decoded_once_into_a_cache(tmp_path, monkeypatch):
    pixels = _mini_csv(tmp_path)
    data = mini_imagenet("train", root=tmp_path, image_size=SIDE)
    assert data.names == ["n01", "n02"] and data.data.shape == (2, 4, 3, SIDE, SIDE)
    for (c, e), image in pixels.items():  # the pixels Pillow decodes from each JPEG
        assert np.array_equal(data.data[c, e].permute(1, 2, 0).numpy(), image)
    [cache] = (tmp_path / "cache").glob("miniimagenet-train-*.npy")
    assert json.loads(cache.with_suffix(".json").read_text())["names"] == ["n01", "n02"]
    with monkeypatch.context() as patch:  # the second load reads the cache, not the images
        module = importlib.import_module("polyskill.data.mini_imagenet")
        patch.setattr(module, "decode_file", lambda *_: pytest.fail("decoded again"))
        assert torch.equal(mini_imagenet("train", root=tmp_path, image_size=SIDE).data, data.data)
    replaced = tmp_path / "mini-imagenet" / "images" / "n0200000001.jpg"
    Image.fromarray(np.zeros((SIDE, SIDE, 3), dtype=np.uint8)).save(replaced)  # the same name, other pixels
    assert (mini_imagenet("train", root=tmp_path, image_size=SIDE).data[1, 1] == 0).all()
    assert len(list((tmp_path / "cache").glob("miniimagenet-train-*.npy"))) == 2


def test_mini_imagenet_malformed_files_name_the_file(tmp_path):
    _mini_csv(tmp_path)
    table = tmp_path / "mini-imagenet" / "train.csv"
    table.write_text(table.read_text() + "n0299999.jpg,n02\n")
    with pytest.raises(DataError, match=r"train\.csv, line 10: image .*n0299999\.jpg does not exist"):
        mini_imagenet("train", root=tmp_path)
    _mini_csv(tmp_path, "val")
    bad = tmp_path / "mini-imagenet" / "images" / "n0100000001.jpg"
    bad.write_bytes(bad.read_bytes()[:40])  # a JPEG cut short
    with pytest.raises(DataError, match=r"n0100000001\.jpg"):
        mini_imagenet("val", root=tmp_path)
    path = tmp_path / "mini-imagenet" / "mini-imagenet-cache-test.pkl"
    _dump(path, {"image_data": _images(4, 0)[..., 0], "class_dict": {"a": [0, 1, 2, 3]}})
    with pytest.raises(DataError, match=r"mini-imagenet-cache-test\.pkl: image_data must be uint8 \[N, H, W, 3\]"):
        mini_imagenet("test", root=tmp_path)
    _dump(path, {"image_data": _images(4, 0), "class_dict": {"a": [0, 1, 2, 7]}})
    with pytest.raises(DataError, match=r"class a must list image indices in \[0, 4\)"):
        mini_imagenet("test", root=tmp_path)
    _mini_pickle(tmp_path, "test")
    path.write_bytes(path.read_bytes()[:-200])  # truncated
    with pytest.raises(DataError, match=r"cannot read .*mini-imagenet-cache-test\.pkl: truncated"):
        mini_imagenet("test", root=tmp_path)


def test_mini_imagenet_pickle_indices_ragged_repeated_or_over_empty_images(tmp_path):
    path = tmp_path / "mini-imagenet" / "mini-imagenet-cache-train.pkl"
    _dump(path, {"image_data": _images(4, 0), "class_dict": {"a": [[0], [1, 2]]}})
    with pytest.raises(DataError, match=r"class a must list image indices in \[0, 4\)"):
        mini_imagenet("train", root=tmp_path)
    _dump(path, {"image_data": _images(4, 0), "class_dict": {"a": [0, 1], "b": [1, 2]}})  # image 1 in two classes
    with pytest.raises(DataError, match=r"class_dict lists image 1 more than once"):
        mini_imagenet("train", root=tmp_path)
    _dump(path, {"image_data": np.zeros((4, 0, 0, 3), np.uint8), "class_dict": {"a": [0, 1]}})
    with pytest.raises(DataError, match=r"image_data must be uint8 \[N, H, W, 3\], got \(4, 0, 0, 3\)"):
        mini_imagenet("train", root=tmp_path)


def test_mini_imagenet_csv_with_a_byte_order_mark_or_a_repeated_row(tmp_path):
    _mini_csv(tmp_path)
    table = tmp_path / "mini-imagenet" / "train.csv"
    text = table.read_text()
    table.write_bytes(b"\xef\xbb\xbf" + text.encode())  # saved by a spreadsheet
    assert mini_imagenet("train", root=tmp_path, image_size=SIDE).names == ["n01", "n02"]
    table.write_text(text + text.splitlines()[1] + "\n")
    with pytest.raises(DataError, match=r"train\.csv, line 10: image n0100000000\.jpg is listed again \(line 2\)"):
        mini_imagenet("train", root=tmp_path, image_size=SIDE)


def test_16_bit_float_and_transparent_images_are_converted_not_clipped(tmp_path):
    _mini_csv(tmp_path)
    images = sorted((tmp_path / "mini-imagenet" / "images").iterdir())
    Image.fromarray(np.full((SIDE, SIDE), 30000, np.uint16)).save(images[0], format="PNG")
    Image.fromarray(np.full((SIDE, SIDE), 0.5, np.float32)).save(images[1], format="TIFF")
    Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 0)).save(images[2], format="PNG")
    data = mini_imagenet("train", root=tmp_path, image_size=SIDE).data
    assert data[0, 0].unique().tolist() == [round(30000 / 257)]  # not clipped to white
    assert data[0, 1].unique().tolist() == [128]  # not truncated to black
    assert data[0, 2].unique().tolist() == [255]  # laid on white, as `polyskill adapt` does


def test_a_damaged_cache_record_is_decoded_again(tmp_path):
    _mini_csv(tmp_path)
    expected = mini_imagenet("train", root=tmp_path, image_size=SIDE).data.clone()
    [record] = (tmp_path / "cache").glob("miniimagenet-train-*.json")
    meta = json.loads(record.read_text())
    for damaged in ({"shape": meta["shape"]}, {**meta, "counts": "x"}, {**meta, "names": ["n01"]}):
        record.write_text(json.dumps(damaged))
        data = mini_imagenet("train", root=tmp_path, image_size=SIDE)
        assert data.names == ["n01", "n02"] and data.counts.tolist() == [4, 4] and torch.equal(data.data, expected)
    for cache in (tmp_path / "cache").iterdir():
        cache.unlink()
    record.mkdir()  # a folder where the record goes
    with pytest.raises(DataError, match=r"the cache file .*miniimagenet-train-.*\.json is a folder: remove it"):
        mini_imagenet("train", root=tmp_path, image_size=SIDE)


# tieredImageNet


def _tiered(root, split="train", counts=(3, 5, 2), npz=False):
    folder = root / "tiered-imagenet"
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(1).shuffle(labels)  # images of a class are spread through the file
    images = _images(len(labels), 2)
    names = [f"n0{c}" for c in range(len(counts))]
    _dump(
        folder / f"{split}_labels.pkl",
        {
            "label_specific": labels,
            "label_general": labels // 2,
            "label_specific_str": names,
            "label_general_str": ["g0", "g1"],
        },
    )
    if npz:
        np.savez(folder / f"{split}_images.npz", images=images)
    else:
        _dump(folder / f"{split}_images_png.pkl", [_png(image) for image in images])
    return images, labels


@pytest.mark.parametrize("npz", [False, True])
def test_tiered_imagenet_classes_in_file_order_memory_mapped(tmp_path, npz):
    images, labels = _tiered(tmp_path, npz=npz)
    data = tiered_imagenet("train", root=tmp_path, image_size=SIDE)
    assert data.names == ["n00", "n01", "n02"] and data.counts.tolist() == [3, 5, 2]
    assert data.data.shape == (3, 5, 3, SIDE, SIDE)
    for c in range(3):
        expected = images[labels == c]  # file order within the class
        assert np.array_equal(data.data[c, : len(expected)].permute(0, 2, 3, 1).numpy(), expected)
    assert not data.data[2, 2:].any()  # the padding of a short class
    [cache] = (tmp_path / "cache").glob("tieredimagenet-train-*.npy")
    assert isinstance(np.load(cache, mmap_mode="r"), np.memmap)
    assert torch.equal(tiered_imagenet("train", root=tmp_path, image_size=SIDE).data, data.data)


def test_tiered_imagenet_damaged_image_and_label_count(tmp_path):
    images, _ = _tiered(tmp_path)
    encoded = [_png(image) for image in images]
    encoded[4] = encoded[4][:30]
    _dump(tmp_path / "tiered-imagenet" / "train_images_png.pkl", encoded)
    with pytest.raises(DataError, match=r"train_images_png\.pkl \(image 4\)"):
        tiered_imagenet("train", root=tmp_path, image_size=SIDE)
    _dump(tmp_path / "tiered-imagenet" / "train_images_png.pkl", [_png(image) for image in images[:-1]])
    with pytest.raises(DataError, match=r"holds 9 images but .*train_labels\.pkl labels 10"):
        tiered_imagenet("train", root=tmp_path, image_size=SIDE)
    assert not list((tmp_path / "cache").glob("*.npy"))  # a failed decode leaves no cache behind


def test_tiered_imagenet_labels_ragged_unnamed_or_far_beyond_the_images(tmp_path):
    _tiered(tmp_path)
    path = tmp_path / "tiered-imagenet" / "train_labels.pkl"
    labels = np.repeat(np.arange(3), [3, 5, 2])
    _dump(path, {"label_specific": [[0], [1, 2]]})
    with pytest.raises(DataError, match=r"label_specific must be class indices >= 0 \[N\], got \[\[0\], \[1, 2\]\]"):
        tiered_imagenet("train", root=tmp_path, image_size=SIDE)
    _dump(path, {"label_specific": labels, "label_specific_str": "abc"})  # not one name a class
    with pytest.raises(DataError, match=r"label_specific_str must be a list of class names, got str"):
        tiered_imagenet("train", root=tmp_path, image_size=SIDE)
    _dump(path, {"label_specific": labels, "label_specific_str": [b"\xff", b"b", b"c"]})
    with pytest.raises(DataError, match=r"train_labels\.pkl: class name b'\\xff' is not UTF-8 text"):
        tiered_imagenet("train", root=tmp_path, image_size=SIDE)
    _dump(path, {"label_specific": labels, "label_specific_str": ["a", "b", "a"]})
    with pytest.raises(DataError, match=r"train_labels\.pkl: label_specific_str lists class 'a' twice"):
        tiered_imagenet("train", root=tmp_path, image_size=SIDE)
    _dump(path, {"label_specific": np.array([0, 10**6] * 5)})  # no name list to be built for a million classes
    with pytest.raises(DataError, match=r"names class 1000000 among only 10 images, so some class has none"):
        tiered_imagenet("train", root=tmp_path, image_size=SIDE)


def _npz_member(path, content: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", content)


def test_tiered_imagenet_npz_damaged_inside_or_declaring_huge_images(tmp_path):
    _tiered(tmp_path, npz=True)
    path = tmp_path / "tiered-imagenet" / "train_images.npz"
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # the zip's directory intact, a byte of the pixels flipped
    path.write_bytes(bytes(damaged))
    with pytest.raises(DataError, match=r"cannot read .*train_images\.npz: image 9 of 10 is damaged \(Bad CRC-32"):
        tiered_imagenet("train", root=tmp_path, image_size=SIDE)
    _npz_member(path, b"\x93NUMPY\x01\x00\x10\x00{'descr': garbage")
    with pytest.raises(DataError, match=r"cannot read .*train_images\.npz: the header of its images\.npy is damaged"):
        tiered_imagenet("train", root=tmp_path, image_size=SIDE)
    header = io.BytesIO()
    huge = {"descr": "|u1", "fortran_order": False, "shape": (10, 10**5, 10**5, 3)}
    np.lib.format.write_array_header_1_0(header, huge)
    _npz_member(path, header.getvalue())
    with pytest.raises(DataError, match=r"its images declare 100000x100000 pixels, more than"):
        tiered_imagenet("train", root=tmp_path, image_size=SIDE)
    np.savez(path, images=np.zeros((10, 0, 0, 3), np.uint8))
    with pytest.raises(DataError, match=r"images must be uint8 \[N, H, W, 3\] in C order, got \(10, 0, 0, 3\)"):
        tiered_imagenet("train", root=tmp_path, image_size=SIDE)


# CIFAR-FS

FINE = ["apple", "bed", "cloud", "dolphin", "eagle", "fox"]


def _cifar(root, per_split=(4, 2), splits=None, bytes_keys=False):
    release = root / "cifar-fs" / "cifar-100-python"
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    _dump(release / "meta", {key("fine_label_names"): FINE, key("coarse_label_names"): ["x"]}, protocol=2)
    parts = []
    for s, (name, n) in enumerate(zip(("train", "test"), per_split, strict=True)):
        labels = np.tile(np.arange(len(FINE)), n)
        data = _images(len(labels), 10 + s, 32).transpose(0, 3, 1, 2).reshape(len(labels), -1)
        batch = {key("data"): data, key("fine_labels"): labels.tolist(), key("filenames"): []}
        _dump(release / name, batch, protocol=2)
        parts.append((data, labels))
    for name, classes in (splits or {"train": ["fox", "apple", "cloud"], "val": ["bed"], "test": ["eagle"]}).items():
        path = root / "cifar-fs" / "splits" / "bertinetto" / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(classes) + "\n")
    return parts


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar_fs_joins_cifar100_train_and_test_per_split_class(tmp_path, bytes_keys):
    (train, train_y), (test, test_y) = _cifar(tmp_path, bytes_keys=bytes_keys)
    data = cifar_fs("train", root=tmp_path)
    assert data.names == ["fox", "apple", "cloud"] and data.data.shape == (3, 6, 3, 32, 32)
    fox = FINE.index("fox")
    expected = np.concatenate([train[train_y == fox], test[test_y == fox]]).reshape(-1, 3, 32, 32)
    assert np.array_equal(data.data[0].numpy(), expected)
    assert cifar_fs("test", root=tmp_path).names == ["eagle"]


def test_cifar_fs_split_file_naming_an_unknown_class(tmp_path):
    _cifar(tmp_path, splits={"val": ["bed", "unicorn"]})
    with pytest.raises(DataError, match=r"val\.txt, line 2: 'unicorn' is not a CIFAR-100 class"):
        cifar_fs("val", root=tmp_path)


def test_cifar_fs_ragged_or_empty_batches_undecodable_names_and_a_byte_order_mark(tmp_path):
    _cifar(tmp_path)
    release = tmp_path / "cifar-fs" / "cifar-100-python"
    split = tmp_path / "cifar-fs" / "splits" / "bertinetto" / "train.txt"
    split.write_bytes(b"\xef\xbb\xbffox\napple\n")
    assert cifar_fs("train", root=tmp_path).names == ["fox", "apple"]
    data = _images(2, 0, 32).reshape(2, -1)
    _dump(release / "train", {"data": data, "fine_labels": [[0], [1, 2]]}, protocol=2)
    with pytest.raises(DataError, match=r"train: fine_labels must be 2 class indices below 6"):
        cifar_fs("train", root=tmp_path)
    _dump(release / "train", {"data": data[:0], "fine_labels": np.array([], dtype=np.int64)}, protocol=2)
    with pytest.raises(DataError, match=r"cifar-100-python/train holds no images"):
        cifar_fs("train", root=tmp_path)
    _dump(release / "meta", {b"fine_label_names": [b"\xff"] + [n.encode() for n in FINE[1:]]}, protocol=2)
    with pytest.raises(DataError, match=r"meta: class name b'\\xff' is not UTF-8 text"):
        cifar_fs("train", root=tmp_path)
    _dump(release / "meta", {b"fine_label_names": [n.encode() for n in FINE[:-1]] + [FINE[0].encode()]}, protocol=2)
    with pytest.raises(DataError, match=rf"meta: fine_label_names lists class '{FINE[0]}' twice"):
        cifar_fs("train", root=tmp_path)


# CUB-200-2011


def _cub(root, counts=(3, 2, 4, 2, 3, 2, 2, 3)):
    base = root / "cub" / "CUB_200_2011"
    classes, images, labels, pixels = [], [], [], {}
    image_id = 0
    for c, n in enumerate(counts):
        folder = f"{c + 1:03d}.Bird_{c}"
        classes.append(f"{c + 1} {folder}")
        (base / "images" / folder).mkdir(parents=True)
        for e in range(n):
            image_id += 1
            path = base / "images" / folder / f"Bird_{c}_{e}.jpg"
            Image.fromarray(_images(1, image_id, 20)[0]).save(path, quality=95)
            images.append(f"{image_id} {folder}/{path.name}")
            labels.append(f"{image_id} {c + 1}")
            pixels[(c, e)] = np.asarray(Image.open(path).convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR))
    for name, lines in (("classes.txt", classes), ("images.txt", images), ("image_class_labels.txt", labels)):
        (base / name).write_text("\n".join(lines) + "\n")
    return pixels


def test_cub_split_of_chen_et_al_by_class_index(tmp_path):
    assert (len(split_classes("train")), len(split_classes("val")), len(split_classes("test"))) == (100, 50, 50)
    assert sorted(split_classes("train") + split_classes("val") + split_classes("test")) == list(range(200))
    pixels = _cub(tmp_path)
    train = cub("train", root=tmp_path, image_size=SIDE)
    assert train.names == ["001.Bird_0", "003.Bird_2", "005.Bird_4", "007.Bird_6"]
    assert train.counts.tolist() == [3, 4, 3, 2] and train.data.shape == (4, 4, 3, SIDE, SIDE)
    assert cub("val", root=tmp_path, image_size=SIDE).names == ["002.Bird_1", "006.Bird_5"]
    test = cub("test", root=tmp_path, image_size=SIDE)
    assert test.names == ["004.Bird_3", "008.Bird_7"] and test.counts.tolist() == [2, 3]
    for e in range(3):  # class index 7, resized as Pillow resizes it
        assert np.array_equal(test.data[1, e].permute(1, 2, 0).numpy(), pixels[(7, e)])
    replaced = sorted((tmp_path / "cub" / "CUB_200_2011" / "images" / "008.Bird_7").iterdir())[0]
    Image.fromarray(np.zeros((SIDE, SIDE, 3), dtype=np.uint8)).save(replaced, format="JPEG")  # same name, new pixels
    assert (cub("test", root=tmp_path, image_size=SIDE).data[1, 0] == 0).all()  # decoded again, not the old cache


def test_cub_index_file_errors_name_the_file(tmp_path):
    _cub(tmp_path)
    base = tmp_path / "cub" / "CUB_200_2011"
    (base / "image_class_labels.txt").write_text("1 1\n2 two\n")
    with pytest.raises(DataError, match=r"images\.txt and .*image_class_labels\.txt list different image ids"):
        cub("train", root=tmp_path)
    (base / "images.txt").write_text("1 001.Bird_0/Bird_0_0.jpg\nnot a line\n")
    with pytest.raises(DataError, match=r"images\.txt, line 2: expected '<id> <value>'"):
        cub("train", root=tmp_path)


def test_cub_non_ascii_digits_repeated_images_and_a_byte_order_mark(tmp_path):
    _cub(tmp_path)
    base = tmp_path / "cub" / "CUB_200_2011"
    text = (base / "images.txt").read_text()
    (base / "classes.txt").write_bytes(b"\xef\xbb\xbf" + (base / "classes.txt").read_bytes())
    assert cub("val", root=tmp_path, image_size=SIDE).names == ["002.Bird_1", "006.Bird_5"]
    (base / "images.txt").write_text(text.replace("1 ", "\u00b9 ", 1))  # a digit int() does not take
    with pytest.raises(DataError, match=r"images\.txt, line 1: expected '<id> <value>'"):
        cub("train", root=tmp_path, image_size=SIDE)
    (base / "images.txt").write_text(text.replace("2 001.Bird_0/Bird_0_1.jpg", "2 001.Bird_0/Bird_0_0.jpg"))
    with pytest.raises(DataError, match=r"lists image 001\.Bird_0/Bird_0_0\.jpg more than once"):
        cub("train", root=tmp_path, image_size=SIDE)


# what every set shares


@pytest.mark.parametrize(
    "load, folder, address",
    [
        (mini_imagenet, "mini-imagenet", "zenodo.org/record/7978538/files/mini-imagenet-cache-train.pkl"),
        (tiered_imagenet, "tiered-imagenet", "renmengye/few-shot-ssl-public"),
        (cifar_fs, "cifar-fs", "cifar-100-python.tar.gz has MD5 eb9058c3a382ffc7106e4002c42a8d85"),
        (cub, "cub", "CUB_200_2011.tgz has SHA-256 0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081"),
    ],
)
def test_a_missing_set_says_where_to_get_it_and_where_to_put_it(tmp_path, load, folder, address):
    with pytest.raises(DataError) as error:
        load("train", root=tmp_path)
    message = str(error.value)
    assert "\n" not in message and address in message
    if folder == "cifar-fs":
        assert "cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in message
    if folder == "cub":
        assert "data.caltech.edu" in message
    assert f"place it in {tmp_path / folder}" in message and "not under the data root" in message
    with pytest.raises(DataError, match=r"unknown .* split 'vinyals/train'; choose one of train, val, test"):
        load("vinyals/train", root=tmp_path)


def test_the_cache_key_names_each_file_by_its_real_path_size_and_time(tmp_path):
    images = tmp_path / "real"
    images.mkdir()
    for i in range(3):
        (images / f"{i}.jpg").write_bytes(b"x" * (i + 1))
    (tmp_path / "alias").symlink_to(images)
    paths = sorted((tmp_path / "alias").iterdir())
    expected = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        expected.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    expected.update(repr((84,)).encode())
    assert source_key(paths, 84) == expected.hexdigest()[:16] != source_key(paths, 32)
    (images / "0.jpg").write_bytes(b"changed")
    assert source_key(paths, 84) != expected.hexdigest()[:16]
    link = tmp_path / "link.jpg"
    link.symlink_to(images / "1.jpg")
    before = source_key([link], 84)
    (images / "1.jpg").write_bytes(b"a longer file")
    assert source_key([link], 84) != before


def _published(monkeypatch, name, sizes, total):
    """Pretend the release of set `name` has these split sizes, so a generated set can match it."""
    monkeypatch.setitem(IMAGE_SETS, name, replace(IMAGE_SETS[name], sizes=sizes, total_images=total))


def test_data_verify_reads_each_colour_set_and_counts_it_against_the_release(tmp_path, monkeypatch):
    assert check_image_set("miniimagenet", tmp_path).state == "missing"
    _cifar(tmp_path)  # 6 images a class; 3, 1 and 1 classes
    real = check_image_set("cifarfs", tmp_path)
    assert real.state == "differs" and real.failed
    assert real.detail.startswith("train has 3 classes where the release has 64; train has 18 images where")
    assert real.detail.endswith("test has 6 images where the release has 12000")
    with pytest.raises(DataError, match=r"unknown colour set 'omniglot'; choose one of miniimagenet, "):
        check_image_set("omniglot", tmp_path)
    _published(monkeypatch, "cifarfs", (("train", 3, 18), ("val", 1, 6), ("test", 1, 6)), 30)
    whole = check_image_set("cifarfs", tmp_path)
    assert (whole.state, whole.failed) == ("ok", False)
    assert whole.detail == "train 3 classes, 18 images; val 1 classes, 6 images; test 1 classes, 6 images"
    _published(monkeypatch, "cifarfs", (("train", 3, 18), ("val", 1, 6), ("test", 1, 6)), 31)
    assert check_image_set("cifarfs", tmp_path).detail == "30 images in all where the release has 31"
    (tmp_path / "cifar-fs" / "splits" / "bertinetto" / "test.txt").unlink()
    damaged = check_image_set("cifarfs", tmp_path)
    assert damaged.state == "damaged"
    assert damaged.detail.startswith("test split: CIFAR-FS (Bertinetto et al. 2019) is not under")
    _cub(tmp_path)  # per-split image counts are not published for CUB: its classes and total are checked
    _published(monkeypatch, "cub", (("train", 4, None), ("val", 2, None), ("test", 2, None)), 21)
    assert check_image_set("cub", tmp_path).state == "ok"
    _published(monkeypatch, "cub", (("train", 4, None), ("val", 2, None), ("test", 2, None)), 20)
    assert check_image_set("cub", tmp_path).detail == "21 images in all where the release has 20"


def test_data_verify_command_fails_on_a_colour_set_that_is_not_the_release(tmp_path, capsys):
    _cifar(tmp_path)
    (tmp_path / "cub").mkdir()
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    assert "folder   cifar-fs/ (CIFAR-FS (Bertinetto et al. 2019); read when loaded)" in capsys.readouterr().out
    assert main(["data", "verify", "--root", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert "differs  cifar-fs/ (CIFAR-FS (Bertinetto et al. 2019); train has 3 classes where the release has 64" in out
    assert "damaged  cub/ (CUB-200-2011 (Wah et al. 2011); train split: CUB-200-2011 (Wah et al. 2011) is not" in out
    assert "missing  mini-imagenet/" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "2 colour set(s) under" in lines[0]
    assert "not the published release: cifar-fs/ (" in lines[0]


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_the_unpickler_refuses_a_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "mini-imagenet" / "mini-imagenet-cache-train.pkl"
    _dump(path, {"image_data": _images(2, 0), "class_dict": {"a": [0, 1]}, "extra": _RunsCode(marker)})
    assert pickle.loads(pickle.dumps(_RunsCode(tmp_path / "control"))) == 0 and (tmp_path / "control").exists()
    with pytest.raises(DataError, match=r"refusing to read .*mini-imagenet-cache-train\.pkl: .* import posix\.system"):
        mini_imagenet("train", root=tmp_path)
    assert not marker.exists()
    _dump(tmp_path / "plain.pkl", {"a": np.arange(3), "b": [np.float32(1.5), (1, "x")], "c": {2, 3}}, protocol=2)
    loaded = load_pickle(tmp_path / "plain.pkl")
    assert loaded["b"] == [1.5, (1, "x")] and loaded["c"] == {2, 3} and np.array_equal(loaded["a"], np.arange(3))
    for protocol in (0, 2):  # empty bytes (an empty array's data) are written as a call of bytes()
        _dump(tmp_path / "empty.pkl", {"a": np.zeros((0, 3), np.uint8), "b": b""}, protocol=protocol)
        assert load_pickle(tmp_path / "empty.pkl")["a"].shape == (0, 3)


def test_a_recipe_trains_end_to_end_on_a_generated_mini_imagenet_folder(tmp_path):
    """A csv + JPEG miniImageNet folder, the shipped recipe shrunk, augmentation on: train, validate, test."""
    from polyskill.recipes import load
    from polyskill.recipes.runner import train_run

    for split, seed in (("train", 0), ("val", 10), ("test", 20)):
        _mini_csv(tmp_path, split, classes=tuple(f"{split}{c}" for c in range(3)), per_class=4, seed=seed)
    overrides = [
        "data.image_size=16",
        "data.augment=standard",
        "model.hidden=8",
        "episodes.way=3",
        "episodes.query=2",
        "validation.way=3",
        "validation.query=2",
        "train.steps=4",
        "train.val_every=2",
        "train.val_episodes=2",
        "train.log_every=2",
        "eval.ways=[3]",
        "eval.query=2",
        "eval.episodes=4",
    ]
    recipe = load("miniimagenet-protonet", overrides)
    out = tmp_path / "run"
    train_run(recipe, out, root=str(tmp_path), progress=False, echo=lambda _: None)
    summary = json.loads((out / "summary.json").read_text())
    [test] = summary["test"]
    assert test["way"] == 3 and 0.0 <= test["accuracy"] <= 1.0
    assert summary["validation"]["best_step"] in (2, 4)
