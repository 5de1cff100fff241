"""Omniglot loading: class sets, pixel conventions, rotations, resizing and the cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import polyskill.data.omniglot_images as omniglot_module
from polyskill.data import omniglot
from polyskill.errors import DataError


def _character(name: str) -> str:
    return name.rsplit("/rot", 1)[0]


def test_split_sizes(data_root):
    sizes = {s: len(omniglot(s, root=data_root)) for s in omniglot_module.SPLITS}
    assert sizes == {
        "vinyals/train": 4112,
        "vinyals/val": 688,
        "vinyals/test": 1692,
        "vinyals/trainval": 4800,
        "background": 964,
        "evaluation": 659,
    }


def test_vinyals_splits_share_no_character(omniglot_train, omniglot_val, data_root):
    test = omniglot("vinyals/test", root=data_root)
    train_chars, val_chars, test_chars = (
        {_character(n) for n in d.names} for d in (omniglot_train, omniglot_val, test)
    )
    assert len(train_chars) == 1028 and len(val_chars) == 172 and len(test_chars) == 423
    assert not train_chars & val_chars and not train_chars & test_chars and not val_chars & test_chars


def test_pixels_ink_is_bright(omniglot_train):
    data = omniglot_train.data
    assert data.shape == (4112, 20, 1, 28, 28) and data.dtype == torch.uint8
    assert data.max() == 255 and data.float().mean() < 0.25 * 255  # mostly background (0)


def test_rotated_classes_are_rotations(omniglot_train):
    index = {n: i for i, n in enumerate(omniglot_train.names)}
    base = omniglot_train.data[index["Angelic/character01/rot000"]]
    for k, deg in ((1, "090"), (2, "180"), (3, "270")):
        rotated = omniglot_train.data[index[f"Angelic/character01/rot{deg}"]]
        assert torch.equal(rotated, torch.rot90(base, k, dims=(-2, -1)))


def test_resize_matches_an_independent_antialiased_resize(data_root):
    with np.load(data_root / "omniglot/images_background.npz") as archive:
        raw = archive["images"][0, :3]
    ours = omniglot_module._resize(raw, 28).astype(float)
    for image, small in zip(raw, ours, strict=True):
        ink = Image.fromarray((~image).astype(np.float32), mode="F")
        reference = np.asarray(ink.resize((28, 28), Image.Resampling.BILINEAR)) * 255
        assert np.abs(reference - small).mean() < 4 and np.abs(reference - small).max() < 64


def test_background_alphabet_row_matches_source(data_root):
    background = omniglot("background", root=data_root)
    with np.load(data_root / "omniglot/images_background.npz") as archive:
        first = archive["images"][0, 0]
    small = omniglot_module._resize(first[None], 28)[0]
    assert background.names[0] == "Arcadian/character01"  # character id 1 of the original release
    assert torch.equal(background.data[0, 0, 0], torch.from_numpy(small))


def test_the_cache_is_used_and_a_damaged_one_is_rebuilt(data_root, monkeypatch, tmp_path):
    monkeypatch.setenv("POLYSKILL_CACHE", str(tmp_path))
    first = omniglot_module.load_all(data_root)
    cache = next(tmp_path.glob("omniglot-28px-*.npz"))
    assert len(list(tmp_path.iterdir())) == 1  # no temporary file left beside it
    real_resize = omniglot_module._resize

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cached array should have been used")

    monkeypatch.setattr(omniglot_module, "_resize", no_decoding)
    assert np.array_equal(omniglot_module.load_all(data_root), first)

    good, shape = cache.read_bytes(), first.shape
    middle = len(good) // 2
    for case, content in {
        "truncated": good[:1000],
        "empty": b"",
        "not an archive": b"\x93NUMPY" + good[6:2000],
        "one data byte flipped": good[:middle] + bytes([good[middle] ^ 0xFF]) + good[middle + 1 :],
    }.items():
        cache.write_bytes(content)
        assert omniglot_module._read_cache(cache, shape) is None, case

    # a well-formed archive (header, shape, zip checksums intact) whose pixels differ from the digest stored with it
    tampered = first.copy()
    tampered[5, 3, 10, 10] ^= 0xFF
    with open(cache, "wb") as f:
        np.savez(f, images=tampered, sha256=np.array(omniglot_module._digest(first)))
    assert omniglot_module._read_cache(cache, shape) is None
    rebuilt = []
    monkeypatch.setattr(omniglot_module, "_resize", lambda *a, **k: rebuilt.append(1) or real_resize(*a, **k))
    assert np.array_equal(omniglot_module.load_all(data_root), first) and rebuilt
    assert np.array_equal(omniglot_module._read_cache(cache, shape), first)  # rewritten whole


def test_unknown_split():
    with pytest.raises(DataError, match="unknown Omniglot split"):
        omniglot("vinyals/nope")


def test_malformed_split_file_names_the_line(tmp_path):
    bad = tmp_path / "split.txt"
    bad.write_text("Angelic/character01/rot000\nnot a class line\n")
    with pytest.raises(DataError, match="line 2"):
        omniglot_module._parse_split(bad, {"Angelic": (1, 20)})
    bad.write_text("Angelic/character99/rot000\n")
    with pytest.raises(DataError, match="no character 99"):
        omniglot_module._parse_split(bad, {"Angelic": (1, 20)})
