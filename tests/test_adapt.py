"""Few-shot on a user's own images: FewShotClassifier and `polyskill adapt` on generated image folders."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from polyskill.classifier import FewShotClassifier
from polyskill.cli import main
from polyskill.data.user_images import InputFormat, convert
from polyskill.meta import ALGORITHMS
from polyskill.recipes import load
from polyskill.recipes.runner import train_run

SHAPES = ("circle", "square", "cross", "triangle")


def draw(
    shape: str,
    size: int,
    jitter: np.random.Generator,
    mode: str = "RGB",
    width: int | None = None,
    height: int | None = None,
) -> Image.Image:
    """A dark shape on a light background, as someone would draw or scan it, slightly moved and resized."""
    w, h = width or size, height or size
    image = Image.new("L", (w, h), 245)
    pen = ImageDraw.Draw(image)
    cx, cy = w / 2 + jitter.uniform(-0.06, 0.06) * size, h / 2 + jitter.uniform(-0.06, 0.06) * size
    r = size * jitter.uniform(0.28, 0.36)
    line = max(2, size // 14)
    if shape == "circle":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], outline=20, width=line)
    elif shape == "square":
        pen.rectangle([cx - r, cy - r, cx + r, cy + r], outline=20, width=line)
    elif shape == "cross":
        pen.line([cx - r, cy - r, cx + r, cy + r], fill=20, width=line)
        pen.line([cx - r, cy + r, cx + r, cy - r], fill=20, width=line)
    else:
        pen.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], outline=20, width=line)
    if mode == "RGBA":  # ink opaque, paper transparent
        alpha = Image.eval(image, lambda v: 255 - v)
        rgba = Image.new("RGBA", image.size, (0, 0, 0, 0))
        rgba.putalpha(alpha)
        return rgba
    return image.convert(mode)


def make_folders(root, shots: int = 3, queries: int = 3, seed: int = 0):
    """support/<shape>/*.png in assorted sizes and modes, query/*.png, and the true label of each query."""
    rng = np.random.default_rng(seed)
    modes = ("RGB", "L", "RGBA", "P")
    truth = {}
    for c, shape in enumerate(SHAPES):
        (root / "support" / shape).mkdir(parents=True)
        for i in range(shots):
            size = int(rng.integers(40, 140))
            draw(shape, size, rng, modes[(c + i) % 4]).save(root / "support" / shape / f"{i}.png")
        for i in range(queries):
            (root / "query").mkdir(exist_ok=True)
            name = f"{shape}_{i}.{'jpg' if i % 2 else 'png'}"
            image = draw(
                shape,
                int(rng.integers(40, 140)),
                rng,
                "RGB",
                width=None if i != 2 else 120,
                height=None if i != 2 else 80,
            )
            image.save(root / "query" / name)
            truth[name] = shape
    return root / "support", root / "query", truth


@pytest.fixture(scope="module")
def protonet_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("runs") / "protonet"
    recipe = load(
        "omniglot-protonet",
        [
            "train.steps=200",
            "model.hidden=32",
            "episodes.way=20",
            "episodes.query=5",
            "data.train=vinyals/train",
            "train.lr=0.002",
            "train.log_every=1000",
        ],
    )
    train_run(recipe, out, progress=False, evaluate=False, echo=lambda _: None)
    return out


@pytest.fixture(scope="module")
def maml_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("runs") / "maml"
    recipe = load(
        "omniglot-maml",
        [
            "train.steps=1",
            "model.hidden=8",
            "episodes.way=3",
            "data.val=null",
            "data.train=vinyals/val",
            "train.meta_batch=1",
        ],
    )
    train_run(recipe, out, progress=False, evaluate=False, echo=lambda _: None)
    return out


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- conversion -----------------------------------------------------------------------------------------
def test_an_elongated_strip_is_shrunk_before_padding_not_padded_to_a_huge_canvas():
    """A 1 x 1,000,000 strip (a few KB as PNG) would be padded to 10^12 pixels for a square model before resizing;
    it is shrunk first, keeping its aspect, and converted like any image."""
    fmt = InputFormat(1, (28, 28), bright_foreground=False, keep_aspect=True)
    strip = Image.new("L", (1, 1_000_000), 0)
    x = convert(strip, fmt, "no")  # padded onto 10^12 pixels, this was a MemoryError or the process killed
    assert x.shape == (1, 28, 28) and float(x.max()) == 0.0  # dark strip, padded with its own (dark) border


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.full((8, 8), 51400, dtype=np.uint16), 200 / 255),  # 16-bit: 51400 / 257 = 200
        (np.full((8, 8), 0.5, dtype=np.float32), 128 / 255),  # float in [0, 1]: 0.5 * 255 = 127.5, rounded
    ],
)
def test_sixteen_bit_and_float_images_are_scaled_not_clipped(array, expected):
    fmt = InputFormat(1, (28, 28), bright_foreground=False, keep_aspect=False)
    x = convert(Image.fromarray(array), fmt, "no")
    assert torch.allclose(x, torch.full_like(x, expected), atol=1e-6)


def test_dark_on_light_images_are_inverted_for_bright_ink_models():
    fmt = InputFormat(1, (28, 28), bright_foreground=True, keep_aspect=True)
    image = draw("circle", 100, np.random.default_rng(0))
    auto, never = convert(image, fmt, "auto"), convert(image, fmt, "no")
    assert auto.shape == (1, 28, 28) and float(auto.min()) >= 0 and float(auto.max()) <= 1
    assert float(auto[0, 0, 0]) < 0.1 and float(never[0, 0, 0]) > 0.9  # background dark after inversion
    assert torch.allclose(auto, 1 - never, atol=1e-6)
    inverted_input = Image.eval(image, lambda v: 255 - v)  # already bright ink on dark: left alone
    assert torch.allclose(convert(inverted_input, fmt, "auto"), auto, atol=2 / 255)


def test_transparent_images_are_flattened_over_white_and_aspect_is_kept():
    fmt = InputFormat(1, (28, 28), bright_foreground=True, keep_aspect=True)
    rng = np.random.default_rng(1)
    rgba = convert(draw("square", 90, rng, "RGBA"), fmt)
    assert float(rgba[0, 0, 0]) < 0.1 and float(rgba.max()) > 0.5  # paper became background, ink bright
    wide = convert(draw("circle", 60, np.random.default_rng(2), width=180, height=60), fmt)
    rows_with_ink = (wide[0] > 0.3).any(1).nonzero().flatten()
    assert rows_with_ink.min() > 5 and rows_with_ink.max() < 22  # padded top and bottom, not stretched


def test_folder_models_take_images_as_their_loader_did():
    fmt = InputFormat(3, (16, 16))
    out = convert(draw("cross", 50, np.random.default_rng(3), width=50, height=25), fmt)
    assert out.shape == (3, 16, 16) and float(out[:, 0, 0].min()) > 0.9  # no inversion, stretched


# -- the estimator ----------------------------------------------------------------------------------------
def test_classifier_fits_and_labels_generated_shapes(protonet_run, tmp_path):
    support, query, truth = make_folders(tmp_path, shots=3, queries=4)
    clf = FewShotClassifier.from_run(protonet_run)
    paths = [p for shape in SHAPES for p in sorted((support / shape).iterdir())]
    labels = [p.parent.name for p in paths]
    assert clf.fit(paths, labels) is clf
    names = sorted(truth)
    proba = clf.predict_proba([query / n for n in names])
    assert proba.shape == (len(names), 4) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert list(clf.classes_) == sorted(SHAPES)
    accuracy = clf.score([query / n for n in names], [truth[n] for n in names])
    assert accuracy >= 0.6, accuracy  # chance is 25%; observed 1.0 on 2026-12-02


def test_classifier_accepts_arrays_and_any_label_type(protonet_run, omniglot_val):
    clf = FewShotClassifier.from_run(protonet_run)
    data = omniglot_val.data[:5].float() / 255  # [5 classes, 20, 1, 28, 28]
    support, query = data[:, :5].reshape(-1, 1, 28, 28), data[:, 5:].reshape(-1, 1, 28, 28)
    labels = np.repeat(np.array([10, 20, 30, 40, 50]), 5)
    clf.fit(support.numpy(), labels)
    predicted = clf.predict(query)
    assert set(predicted) <= {10, 20, 30, 40, 50}
    assert np.mean(predicted == np.repeat(labels[::5], 15)) > 0.6  # chance 20%; observed 0.787 on 2026-12-02
    grey = (data[:, :5].reshape(-1, 28, 28) * 255).to(torch.uint8)  # [n, H, W] uint8 works too
    assert np.array_equal(clf.fit(grey, labels).predict(query), predicted)


def test_classifier_refuses_bad_use(protonet_run, maml_run):
    clf = FewShotClassifier.from_run(protonet_run)
    with pytest.raises(Exception, match="before predict"):
        clf.predict(torch.zeros(2, 1, 28, 28))
    with pytest.raises(Exception, match="at least 2 classes"):
        clf.fit(torch.zeros(3, 1, 28, 28), ["a", "a", "a"])
    with pytest.raises(Exception, match="one label per example"):
        clf.fit(torch.zeros(3, 1, 28, 28), ["a", "b"])
    with pytest.raises(Exception, match="expected images"):
        clf.fit(torch.zeros(2, 3, 28, 28), ["a", "b"])
    maml = FewShotClassifier.from_run(maml_run)
    with pytest.raises(Exception, match="at most 3"):
        maml.fit(torch.rand(4, 1, 28, 28), [0, 1, 2, 3])
    maml.fit(torch.rand(2, 1, 28, 28), ["x", "y"])  # fewer classes than the head: the first outputs
    assert maml.predict_proba(torch.rand(3, 1, 28, 28)).shape == (3, 2)


# -- the command ------------------------------------------------------------------------------------------
def test_adapt_cli_writes_predictions(protonet_run, tmp_path, capsys):
    support, query, truth = make_folders(tmp_path, shots=3, queries=4)
    (query / "more").mkdir()
    draw("cross", 64, np.random.default_rng(9)).save(query / "more" / "x.bmp")
    truth["more/x.bmp"] = "cross"
    (query / ".DS_Store").write_bytes(b"\0\1")
    out = tmp_path / "out" / "predictions.csv"
    code, stdout, err = run_cli(
        ["adapt", str(protonet_run), "--support", str(support), "--query", str(query), "--out", str(out)], capsys
    )
    assert code == 0, err
    assert "labelled 17 image(s) into 4 classes" in stdout and "transductive" not in stdout + err
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["file"] for r in rows) == sorted(truth)
    assert set(rows[0]) == {"file", "label", "confidence", *(f"p_{s}" for s in SHAPES)}
    for row in rows:
        probs = [float(row[f"p_{s}"]) for s in SHAPES]
        assert math.isclose(sum(probs), 1, abs_tol=1e-3) and math.isclose(max(probs), float(row["confidence"]))
    assert np.mean([r["label"] == truth[r["file"]] for r in rows]) >= 0.6  # chance 25%; observed 1.0 on 2026-12-02
    code, stdout, _ = run_cli(["adapt", str(protonet_run), "--support", str(support), "--query", str(query)], capsys)
    assert code == 0 and stdout.startswith("file,label,confidence") and len(stdout.splitlines()) == 18


def _bad(tmp_path, case):
    """A support/query pair broken in one way, and the words the error must contain."""
    support, query, _ = make_folders(tmp_path, shots=2, queries=1)
    if case == "missing support":
        return tmp_path / "nope", query, "does not exist"
    if case == "no class folders":
        empty = tmp_path / "flat"
        empty.mkdir()
        return empty, query, "no class sub-folders"
    if case == "empty class":
        (support / "hexagon").mkdir()
        return support, query, "hexagon"
    if case == "bad files":
        (support / "circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
        (support / "square" / "notes.txt").write_text("hello")
        return support, query, "broken.png (unreadable"
    if case == "stray file":
        draw("circle", 40, np.random.default_rng(0)).save(support / "loose.png")
        return support, query, "outside the class sub-folders"
    if case == "one class":
        only = tmp_path / "one"
        (only / "circle").mkdir(parents=True)
        draw("circle", 40, np.random.default_rng(0)).save(only / "circle" / "a.png")
        return only, query, "at least 2"
    if case == "empty query":
        empty = tmp_path / "emptyq"
        empty.mkdir()
        (empty / ".hidden.png").write_bytes(b"")
        return support, empty, "no images to label"
    if case == "bad query":
        (query / "zero.jpg").write_bytes(b"")
        return support, query, "zero.jpg"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "missing support",
        "no class folders",
        "empty class",
        "bad files",
        "stray file",
        "one class",
        "empty query",
        "bad query",
    ],
)
def test_adapt_cli_bad_input_is_one_clear_error(protonet_run, tmp_path, capsys, case):
    support, query, words = _bad(tmp_path, case)
    out = tmp_path / "predictions.csv"
    code, _, err = run_cli(
        ["adapt", str(protonet_run), "--support", str(support), "--query", str(query), "--out", str(out)], capsys
    )
    assert code == 2 and err.startswith("polyskill: error:") and words in err, err
    assert "Traceback" not in err and not out.exists()
    if case == "bad files":
        assert "notes.txt (not an image file" in err  # every bad file is listed, not just the first


def test_adapt_cli_refuses_too_many_classes_bad_runs_and_bad_options(maml_run, protonet_run, tmp_path, capsys):
    support, query, _ = make_folders(tmp_path, shots=1, queries=1)
    code, _, err = run_cli(["adapt", str(maml_run), "--support", str(support), "--query", str(query)], capsys)
    assert code == 2 and "4 classes given" in err and "at most 3" in err
    for image in (support / "cross").iterdir():
        image.unlink()
    (support / "cross").rmdir()
    code, stdout, err = run_cli(["adapt", str(maml_run), "--support", str(support), "--query", str(query)], capsys)
    assert code == 0 and len(stdout.splitlines()) == 5, err  # MAML normalises the query set with its own statistics
    assert "transductive: every prediction used all 4 query examples together" in err
    code, _, err = run_cli(["adapt", str(tmp_path), "--support", str(support), "--query", str(query)], capsys)
    assert code == 2 and "not a run directory" in err
    code, _, err = run_cli(
        ["adapt", str(protonet_run), "--support", str(support), "--query", str(query), "--out", str(tmp_path)], capsys
    )
    assert code == 2 and "is a folder" in err
    code, _, err = run_cli(
        ["adapt", str(protonet_run), "--support", str(support), "--query", str(query), "--device", "warp-drive"], capsys
    )
    assert code == 2 and "not a torch device" in err and "Traceback" not in err


def _algorithm(name: str):
    """A small, untrained instance of a registered algorithm, built from its contract as a recipe would be."""
    from polyskill.nn import Conv4

    cls = ALGORITHMS[name]
    contract = cls.contract
    way = 3 if contract.output_layer else None
    supplied = {"input_shape": (1, 28, 28), "classes": 3, "num_classes": 10}
    options = {arg: supplied[arg] for arg in contract.builder_args}
    backbone = Conv4(hidden=8, out_features=way, pools=2 if contract.feature_maps else None)
    return cls(backbone, **options), way


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_classifier_works_for_every_algorithm(name):
    torch.manual_seed(0)
    algo, way = _algorithm(name)
    clf = FewShotClassifier(algo, InputFormat(1, (28, 28), bright_foreground=True, keep_aspect=True), way)
    support = torch.rand(6, 1, 28, 28)
    clf.fit(support, ["b", "a", "c", "a", "b", "c"])
    query = torch.rand(4, 1, 28, 28)
    proba = clf.predict_proba(query)
    assert proba.shape == (4, 3) and np.allclose(proba.sum(1), 1, atol=1e-4) and (proba >= 0).all()
    assert list(clf.classes_) == ["a", "b", "c"]
    assert list(clf.predict(query)) == [clf.classes_[i] for i in proba.argmax(1)]  # the same scores, same labels


def test_one_shot_protonet_classifies_its_own_support_set():
    """Each one-shot support example is its class's prototype (distance 0), so it must get its own label back:
    labels mapped to the wrong classes, or a predictor scoring other examples, would fail."""
    torch.manual_seed(0)
    algo, way = _algorithm("protonet")
    clf = FewShotClassifier(algo, InputFormat(1, (28, 28), bright_foreground=True, keep_aspect=True), way)
    support = torch.rand(5, 1, 28, 28)
    labels = ["e", "c", "a", "d", "b"]
    assert list(clf.fit(support, labels).predict(support)) == labels
