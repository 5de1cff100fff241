"""A user's folder of class sub-folders: sizes, channels, uneven classes and bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from polyskill.data import EpisodeSampler, image_folder
from polyskill.errors import DataError


def _make(root, counts: dict[str, int], size=(40, 30), mode="RGB") -> None:
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(root / name / f"{i}.png")


def test_uneven_classes_and_resizing(tmp_path):
    _make(tmp_path, {"cat": 4, "dog": 6, "emu": 3})
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    data = image_folder(tmp_path, image_size=16, channels=3)
    assert data.names == ["cat", "dog", "emu"] and data.counts.tolist() == [4, 6, 3]
    assert data.data.shape == (3, 6, 3, 16, 16)
    grey = image_folder(tmp_path, image_size=(12, 20), channels=1)
    assert grey.data.shape == (3, 6, 1, 12, 20)
    batch = EpisodeSampler(grey, way=3, shot=1, query=2, seed=0).sample(2)
    assert batch.query_x.shape == (2, 6, 1, 12, 20)


def test_pixels_are_kept(tmp_path):
    (tmp_path / "a").mkdir()
    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(image, "L").save(tmp_path / "a" / "x.png")
    assert np.array_equal(image_folder(tmp_path, image_size=8).data[0, 0, 0].numpy(), image)


def test_sixteen_bit_and_transparent_images_read_as_a_viewer_shows_them(tmp_path):
    """A 16-bit scan is scaled by 1/257 (a bare convert clips it to white) and a transparent pixel is laid on white
    (a bare convert turns it black)."""
    (tmp_path / "a").mkdir()
    Image.fromarray(np.full((8, 8), 51400, dtype=np.uint16)).save(tmp_path / "a" / "deep.png")
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0], rgba[:4, :, 3] = 255, 255  # red, opaque in the top half only
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a" / "clear.png")
    grey = image_folder(tmp_path, image_size=8, channels=1).data[0, :, 0].numpy()
    assert (grey[1] == 200).all()  # deep.png, second in name order
    colour = image_folder(tmp_path, image_size=8, channels=3).data[0, 0].numpy()  # clear.png
    assert (colour[:, :4] == np.array([255, 0, 0])[:, None, None]).all() and (colour[:, 4:] == 255).all()


def test_unreadable_image_names_the_file(tmp_path):
    _make(tmp_path, {"a": 2})
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"broken\.png"):
        image_folder(tmp_path)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        image_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        image_folder(tmp_path)
