"""Hostile inputs: every bad input is one `polyskill: error:` line on stderr and exit code 2, never a traceback,
and a run directory a refused command names is left exactly as it was (every file's bytes and mtime).

The cases run the real command line (`polyskill.cli.main` in this process, or a subprocess where a limit must
be set on it); one tiny Omniglot run is trained per module and copied for each case that damages it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_RECIPE, tiny_recipe
from PIL import Image

import polyskill.cli as cli
from polyskill.classifier import ClassifierError, FewShotClassifier
from polyskill.data.folder import image_folder
from polyskill.data.root import cache_dir
from polyskill.errors import ConfigError, DataError, RunError
from polyskill.train.checkpoint import load_checkpoint, read_json
from polyskill.train.episodic import FitConfig
from polyskill.train.metrics import MetricsLog, read_metrics
from polyskill.train.run_status import process_start, read_status

REPO = Path(__file__).resolve().parents[1]


# -- helpers ------------------------------------------------------------------------------------------------------
def run_cli(args: list, capsys) -> tuple[int, str, str]:
    """`polyskill ARGS` in this process: (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error(code: int, err: str, *needles: str) -> str:
    """Exit code 2 and exactly one `polyskill: error:` line on stderr (no traceback) holding every needle."""
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("polyskill: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder` (hidden ones included): its bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def bomb_png(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A small PNG whose header declares width x height pixels (a decompression bomb: the pixels are not there)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
        + chunk(b"IEND", b"")
    )
    return path


def shape_png(path: Path, seed: int) -> Path:
    """A small grey image with a random blob: a valid picture to adapt to."""
    pixels = np.random.default_rng(seed).integers(0, 255, size=(20, 20), dtype=np.uint8)
    Image.fromarray(pixels, "L").save(path)
    return path


def image_classes(root: Path, classes: tuple[str, ...] = ("circle", "square"), per_class: int = 2) -> Path:
    """root/<class>/<n>.png for a support or training folder."""
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shape_png(root / name / f"{i}.png", seed=10 * c + i)
    return root


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One trained tiny run (6 steps, hidden 8) for the whole module; copy it before damaging it."""
    folder = tmp_path_factory.mktemp("hostile")
    tiny_recipe(folder)
    code = cli.main(["train", str(folder / "tiny.yaml"), "--out", str(folder / "run"), "--quiet"])
    assert code == 0
    return folder / "run"


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of the tiny run (mtimes kept)."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


# -- the command line itself --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, needle",
    [
        ([], "required: COMMAND"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["train", "--nproc", "x"], "train: argument --nproc"),
        (["eval"], "eval: the following arguments are required: run"),
        (["eval", "somewhere", "--split", "nope"], "invalid choice: 'nope'"),
        (["adapt", "somewhere"], "--support"),
        (["data", "frobnicate"], "invalid choice: 'frobnicate'"),
        (["runs", "--bogus"], "runs: unrecognized arguments: --bogus"),  # sub-commands registered by other modules
        (["compare"], "compare:"),
        (["report"], "report:"),
        (["sweep"], "sweep:"),
        (["train", "tiny.yaml", "--bogus", "1"], "train: unrecognized arguments: --bogus 1"),
    ],
)
def test_argparse_errors_are_one_line(args, needle, capsys):
    code, _, err = run_cli(args, capsys)
    assert_one_error(code, err, needle, "--help")


def test_an_unexpected_exception_is_one_line_naming_a_bug(monkeypatch, capsys):
    def broken(args):
        raise KeyError("oops")

    monkeypatch.setitem(cli.HANDLERS, "recipes", broken)
    monkeypatch.delenv(cli.ENV_DEBUG, raising=False)
    code, _, err = run_cli(["recipes"], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "a bug in polyskill" in lines[0] and "KeyError" in lines[0], err
    monkeypatch.setenv(cli.ENV_DEBUG, "1")  # ... and the traceback is there when asked for
    with pytest.raises(KeyError):
        cli.main(["recipes"])


def test_a_file_system_refusal_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "affinity.json").write_text(json.dumps({"tasks": ["a", "b"], "cosine": [[1, 0.5], [0.5, 1]]}))
    (tmp_path / "file").write_text("not a folder")
    code, _, err = run_cli(["affinity", run, "--out", tmp_path / "file" / "x.png"], capsys)
    assert_one_error(code, err, "file")


# -- training settings ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["lr", "momentum", "weight_decay", "lr_gamma", "max_minutes", "grad_clip"])
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_training_settings_are_refused(field, value, tmp_path, capsys):
    tiny_recipe(tmp_path)
    code, _, err = run_cli(
        ["train", tmp_path / "tiny.yaml", "--set", f"train.{field}={value}", "--out", tmp_path / "run"], capsys
    )
    assert_one_error(code, err, f"train.{field}")
    assert not (tmp_path / "run").exists()


def test_fit_config_refuses_non_finite_and_mistyped_values():
    for field in ("lr", "momentum", "weight_decay", "lr_gamma", "max_minutes", "grad_clip"):
        for bad in (float("nan"), float("inf"), "0.1", True):
            with pytest.raises(ConfigError, match=f"train.{field} must be a finite number"):
                FitConfig(**{field: bad})
    with pytest.raises(ConfigError, match=r"train\.steps must be an integer"):
        FitConfig(steps=2.5)
    with pytest.raises(ConfigError, match=r"train\.seed must be >= 0"):
        FitConfig(seed=-1)


def test_a_refused_resume_setting_leaves_the_run_as_it_was(run_copy, capsys):
    before = snapshot(run_copy)
    code, _, err = run_cli(["train", "--resume", run_copy, "--set", "train.lr=.nan"], capsys)
    assert_one_error(code, err, "train.lr")
    assert snapshot(run_copy) == before


BAD_DEVICES = ["cuda:99", "gpu", "meta", "cuda:-1", "cuda:x"] + ([] if torch.cuda.is_available() else ["cuda:7"])


@pytest.mark.parametrize("device", BAD_DEVICES)
def test_a_device_this_machine_lacks_is_refused_before_training(device, tmp_path, capsys):
    tiny_recipe(tmp_path)
    code, _, err = run_cli(
        ["train", tmp_path / "tiny.yaml", "--set", f"train.device={device}", "--out", tmp_path / "run"], capsys
    )
    assert_one_error(code, err, "train.device", device)
    assert not (tmp_path / "run").exists()


def test_a_gpu_index_beyond_the_machine_s_count_is_refused(monkeypatch):
    from polyskill.train.device import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with two GPUs, as torch reports it
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == torch.device("cuda:1") and check_device("cuda") == torch.device("cuda")
    with pytest.raises(ConfigError, match=r"'cuda:2': this machine has 2 CUDA GPU\(s\), cuda:0 to cuda:1"):
        check_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        check_device("cuda")


def test_adapt_refuses_a_device_this_machine_lacks(tiny_run, tmp_path, capsys):
    support, query = image_classes(tmp_path / "support"), image_classes(tmp_path / "query")
    code, _, err = run_cli(["adapt", tiny_run, "--support", support, "--query", query, "--device", "cuda:99"], capsys)
    assert_one_error(code, err, "cuda:99")


# -- damaged run files ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["last.pt", "best.pt"])
@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_checkpoint_is_one_line_naming_it(name, damage, run_copy, capsys):
    path = run_copy / name
    good = path.read_bytes()
    path.write_bytes(b"" if damage == "empty" else good[: len(good) // 2])
    before = snapshot(run_copy)
    args = (
        ["train", "--resume", run_copy, "--set", "train.steps=8", "--no-eval"]
        if name == "last.pt"
        else ["eval", run_copy, "--episodes", "2"]
    )
    code, _, err = run_cli(args, capsys)
    assert_one_error(code, err, name, "damaged")
    assert snapshot(run_copy) == before


def test_load_checkpoint_turns_every_failure_into_one_run_error(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"w": torch.ones(50)}, path)
    good = path.read_bytes()
    for content in (b"", good[:10], good[:-30], b"\0" * 200, b"PK\x03\x04" + b"\0" * 100):
        path.write_bytes(content)
        with pytest.raises(RunError, match=r"x\.pt"):
            load_checkpoint(path)
    torch.save([1, 2, 3], path)  # a valid file that is not a checkpoint
    with pytest.raises(RunError, match="not a checkpoint"):
        load_checkpoint(path)


def _fill_limit() -> None:
    """In the child: writes beyond 12 kB fail with EFBIG (as on a full disk) instead of killing the process."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, 12_000))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(run_copy):
    checkpoints = {name: (run_copy / name).read_bytes() for name in ("last.pt", "best.pt")}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "polyskill.cli",
            "train",
            "--resume",
            str(run_copy),
            "--set",
            "train.steps=12",
            "--no-eval",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=_fill_limit,
        timeout=600,
    )
    line = assert_one_error(result.returncode, result.stderr, "could not write", "is intact")
    assert ".pt" in line and str(run_copy) in line
    assert {name: (run_copy / name).read_bytes() for name in checkpoints} == checkpoints
    assert not [p.name for p in run_copy.iterdir() if p.name.endswith(".tmp")]  # the half-written file is gone


def test_metrics_with_bytes_that_are_not_utf8_are_read_around(run_copy, capsys):
    path = run_copy / "metrics.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:1]) + b'\xff\xfe{"step": 3, \xc3\x28}\n' + b"".join(lines[1:]))
    assert read_metrics(path) == [json.loads(line) for line in lines]
    code, out, err = run_cli(["runs", run_copy.parent], capsys)
    assert code == 0 and "Traceback" not in err and "run" in out
    code, out, err = run_cli(["train", "--resume", run_copy, "--set", "train.steps=8", "--no-eval", "--quiet"], capsys)
    assert code == 0, err
    steps = [r["step"] for r in read_metrics(path)]
    assert steps == sorted(steps) and steps[-1] == 8
    assert b"\xff" not in path.read_bytes()  # the resume kept the good lines up to its checkpoint, dropped the rest


def test_truncate_after_keeps_the_good_lines_verbatim(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1, "loss": 0.5}\n\xff bad\n[1]\n{"step": 2, "loss": 0.25}\n{"step": 3}\n{"ste')
    MetricsLog(path).truncate_after(2)
    assert path.read_text() == '{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.25}\n'


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe not UTF-8",
        b"[1, 2]",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"tasks": ',
    ],
)
def test_read_json_refuses_what_is_not_a_json_object(content, tmp_path):
    path = tmp_path / "summary.json"
    path.write_bytes(content)
    with pytest.raises(RunError, match=r"summary\.json"):
        read_json(path)


@pytest.mark.parametrize(
    "report",
    [
        b"[1, 2]",
        b"\xff not UTF-8",
        b"[" * 100_000,
        json.dumps({"tasks": "ab", "cosine": [[1, 0], [0, 1]]}).encode(),
        json.dumps({"tasks": [1, 2], "cosine": [[1, 0], [0, 1]]}).encode(),
        json.dumps({"tasks": ["a", "b"]}).encode(),
        json.dumps({"tasks": ["a", "b"], "cosine": [[1, 0, 0], [0, 1, 0]]}).encode(),
        json.dumps({"tasks": ["a", "b"], "cosine": [[1, "x"], [0, 1]]}).encode(),
        json.dumps({"tasks": ["a", "b"], "cosine": [[1, True], [0, 1]]}).encode(),
        json.dumps({"tasks": ["a", "b"], "cosine": [[1, 0], [0, 1]], "lookahead": {"a": 1}}).encode(),
        b'{"tasks": ["a", "b"], "cosine": [[1, Infinity], [0, 1]]}',
    ],
)
def test_an_affinity_file_of_the_wrong_shape_is_one_line(report, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "affinity.json").write_bytes(report)
    before = snapshot(run)
    code, out, err = run_cli(["affinity", run], capsys)
    assert_one_error(code, err, "affinity.json")
    assert snapshot(run) == before and out == ""


def test_run_status_tells_a_reused_pid_from_the_run_s_own_process(run_copy, capsys):
    record = json.loads((run_copy / "run.json").read_text())
    other = 1  # alive, and not the process that trained the run
    if process_start(other) is None:
        pytest.skip("no /proc/PID/stat here: the start time is not recorded")
    record.update(status="running", host=socket.gethostname(), pid=other, pid_start=process_start(other))
    (run_copy / "run.json").write_text(json.dumps(record))
    assert read_status(run_copy)["status"] == "running"  # the same process: live
    before = snapshot(run_copy)
    code, _, err = run_cli(["train", "--resume", run_copy, "--set", "train.steps=8", "--no-eval"], capsys)
    assert_one_error(code, err, "being trained")
    assert snapshot(run_copy) == before

    record["pid_start"] = process_start(other) + 12345  # the PID was handed to another process since
    (run_copy / "run.json").write_text(json.dumps(record))
    assert read_status(run_copy)["status"] == "interrupted"
    code, _, err = run_cli(["train", "--resume", run_copy, "--set", "train.steps=8", "--no-eval", "--quiet"], capsys)
    assert code == 0, err
    assert read_status(run_copy)["status"] == "finished" and read_status(run_copy)["pid_start"] is not None


# -- data ---------------------------------------------------------------------------------------------------------
def test_data_verify_with_a_corrupt_file_is_one_line(tmp_path, data_root, capsys):
    target = tmp_path / "omniglot" / "alphabets.json"
    target.parent.mkdir(parents=True)
    target.write_text((data_root / "omniglot" / "alphabets.json").read_text()[:-10])
    code, out, err = run_cli(["data", "verify", "--root", tmp_path], capsys)
    assert_one_error(code, err, "corrupt", "omniglot/alphabets.json")
    assert "corrupt  omniglot/alphabets.json" in out


def test_a_tampered_omniglot_cache_is_rebuilt_not_used(run_copy, data_root, tmp_path, monkeypatch, capsys):
    import polyskill.data.omniglot_images as omniglot_module

    code, reference, err = run_cli(["eval", run_copy, "--episodes", "4", "--way", "3"], capsys)
    assert code == 0, err
    good = omniglot_module.load_all(data_root)
    shared = next(cache_dir(data_root).glob("omniglot-28px-*.npz"))
    cache = tmp_path / "cache" / shared.name
    cache.parent.mkdir()
    tampered = good.copy()  # same header, shape and stored digest; the pixels differ
    tampered[:, :, 5:20, 5:20] = 255
    with open(cache, "wb") as f:
        np.savez(f, images=tampered, sha256=np.array(omniglot_module._digest(good)))
    monkeypatch.setenv("POLYSKILL_CACHE", str(cache.parent))
    code, again, err = run_cli(["eval", run_copy, "--episodes", "4", "--way", "3"], capsys)
    assert code == 0, err
    assert again == reference
    assert np.array_equal(omniglot_module._read_cache(cache, good.shape), good)  # rebuilt


@pytest.mark.parametrize("size", [(30000, 30000), (10000, 10000)])
def test_a_decompression_bomb_in_a_training_folder_is_refused(size, tmp_path, capsys):
    folder = image_classes(tmp_path / "images", classes=("a", "b", "c"), per_class=3)
    bomb = bomb_png(folder / "b" / "huge.png", *size)
    with pytest.raises(DataError, match=r"huge\.png"):
        image_folder(folder)
    recipe = {
        **TINY_RECIPE,
        "data": {"dataset": "folder", "train": str(folder), "val": None, "test": str(folder)},
        "episodes": {"way": 2, "shot": 1, "query": 1},
        "eval": {"ways": [2], "episodes": 2},
    }
    recipe.pop("validation", None)
    (tmp_path / "folder.yaml").write_text(yaml.safe_dump(recipe))
    code, _, err = run_cli(["train", tmp_path / "folder.yaml", "--out", tmp_path / "run"], capsys)
    assert_one_error(code, err, str(bomb), "pixels")
    assert not (tmp_path / "run").exists()


def test_a_broken_link_in_a_training_folder_is_refused(tmp_path):
    folder = image_classes(tmp_path / "images")
    (folder / "circle" / "ghost.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(DataError, match=r"ghost\.png"):
        image_folder(folder)


# -- adapt --------------------------------------------------------------------------------------------------------
def _adapt_case(case: str, tmp_path: Path) -> tuple[Path, Path, str]:
    """Support and query folders broken in one way, and what the error must name."""
    support, query = image_classes(tmp_path / "support"), image_classes(tmp_path / "query")
    if case == "bomb in support":
        return support, query, str(bomb_png(support / "circle" / "huge.png"))
    if case == "bomb in query":
        return support, query, str(bomb_png(query / "square" / "huge.png", 10000, 10000))
    if case == "broken link in support":
        (support / "square" / "ghost.png").symlink_to(tmp_path / "nowhere.png")
        return support, query, "ghost.png"
    if case == "broken link in query":
        (query / "ghost.png").symlink_to(tmp_path / "nowhere.png")
        return support, query, "ghost.png"
    if case == "folder inside a class folder":
        image_classes(support / "circle" / "more", classes=("inner",))
        return support, query, str(support / "circle" / "more")
    if case == "link to a folder in query":
        (query / "elsewhere").symlink_to(support / "circle", target_is_directory=True)
        return support, query, "elsewhere"
    if case == "pipe in query":
        os.mkfifo(query / "pipe.png")
        return support, query, "pipe.png"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "bomb in support",
        "bomb in query",
        "broken link in support",
        "broken link in query",
        "folder inside a class folder",
        "link to a folder in query",
        "pipe in query",
    ],
)
def test_adapt_names_every_file_it_cannot_use(case, tiny_run, tmp_path, capsys):
    support, query, needle = _adapt_case(case, tmp_path)
    out = tmp_path / "predictions.csv"
    before = snapshot(tiny_run)
    code, _, err = run_cli(["adapt", tiny_run, "--support", support, "--query", query, "--out", out], capsys)
    assert_one_error(code, err, needle)
    assert not out.exists() and snapshot(tiny_run) == before


def test_adapt_does_not_replace_a_special_file_with_its_csv(tiny_run, tmp_path, capsys):
    support, query = image_classes(tmp_path / "support"), image_classes(tmp_path / "query")
    os.mkfifo(tmp_path / "pipe")
    code, _, err = run_cli(
        ["adapt", tiny_run, "--support", support, "--query", query, "--out", tmp_path / "pipe"], capsys
    )
    assert_one_error(code, err, "not a regular file")
    assert (tmp_path / "pipe").is_fifo()


def test_adapt_neutralises_cells_that_would_start_a_spreadsheet_formula(tiny_run, tmp_path, capsys):
    support = image_classes(tmp_path / "support", classes=("=HYPERLINK(1)", "@sum", "plain"))
    query = tmp_path / "query"
    query.mkdir()
    for i, name in enumerate(("+1.png", "-2.png", "=3.png", "\tx.png", "ok.png")):
        shape_png(query / name, seed=100 + i)
    code, out, err = run_cli(["adapt", tiny_run, "--support", support, "--query", query], capsys)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    cells = [cell for row in rows for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], cells
    files = {row[0] for row in rows[1:]}
    assert files == {"'+1.png", "'-2.png", "'=3.png", "'\tx.png", "ok.png"}
    assert {row[1] for row in rows[1:]} <= {"'=HYPERLINK(1)", "'@sum", "plain"}


# -- the classifier API -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classifier(tiny_run) -> FewShotClassifier:
    return FewShotClassifier.from_run(tiny_run)


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=(n, 1, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize(
    "X, y, needle",
    [
        (None, ["a", "b"], "X is None"),
        (_images(2), None, "y is None"),
        (_images(3), ["a", "b"], "3 examples, 2 labels"),
        (_images(0), [], "no images"),
        (_images(2), ["a", "a"], "at least 2 classes"),
        (np.full((2, 1, 28, 28), np.nan, dtype=np.float32), ["a", "b"], "NaN"),
        (_images(2)[:, :, :, :0], ["a", "b"], "expected images"),
        (_images(2)[:, 0, 0], ["a", "b"], "expected images"),
        (np.zeros((2, 3, 28, 28), dtype=np.float32), ["a", "b"], "expected images"),
        (_images(2), ["a", None], "None"),
        (_images(2), [object(), object()], "cannot be compared"),
        (_images(2), [[1, 2], [3, 4]], "1-d"),
        (_images(2), [0.5, float("nan")], "NaN"),
        ("one/path.png", ["a", "b"], "X must be"),
        (np.array([object(), object()]), ["a", "b"], "X must be an array of numbers"),
    ],
)
def test_classifier_fit_refuses_bad_examples_clearly(classifier, X, y, needle):
    with pytest.raises(ClassifierError, match=needle) as info:
        classifier.fit(X, y)
    assert isinstance(info.value, ValueError) and isinstance(info.value, DataError)


def test_classifier_predict_before_fit_and_with_bad_input(tiny_run):
    fresh = FewShotClassifier.from_run(tiny_run)
    with pytest.raises(ClassifierError, match="before predict"):
        fresh.predict(_images(2))
    fresh.fit(_images(4), ["a", "b", "a", "b"])
    assert fresh.predict(_images(3)).shape == (3,)
    with pytest.raises(ClassifierError, match="X is None"):
        fresh.predict(None)
    with pytest.raises(ClassifierError, match="NaN"):
        fresh.predict_proba(np.full((1, 1, 28, 28), np.inf, dtype=np.float32))
    with pytest.raises(ClassifierError, match="batch_size"):
        FewShotClassifier(fresh.algo, fresh.inputs, batch_size=0)


# =================================================================================================================
# The run and recipe core's cases (concurrent starts into one --out, resume with a changed model, a run killed
# before its first checkpoint, a refused resume rewriting run.json, eval during training) are in
# tests/test_hostile_runs.py; add more of them here or there.
# =================================================================================================================
