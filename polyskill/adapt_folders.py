"""`polyskill adapt`: label a folder of a user's images from a folder of labelled examples, with a trained run."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classifier import FewShotClassifier
from .data.user_images import read_query, read_support
from .errors import DataError
from .train.checkpoint import write_text

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: one that would start a formula (=, +, -, @, tab, CR; a file or class
    name comes from the user's folders) gets a leading single quote, as OWASP advises against CSV injection."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@dataclass
class Predictions:
    """The label and class probabilities of every query image (paths relative to the query folder)."""

    files: list[str]
    classes: list[str]
    labels: list[str]
    probabilities: np.ndarray

    def to_csv(self) -> str:
        """file, label, confidence, then one probability column per class; names that would start a spreadsheet
        formula are quoted (see `spreadsheet_safe`)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["file", "label", "confidence", *(spreadsheet_safe(f"p_{c}") for c in self.classes)])
        for name, label, probs in zip(self.files, self.labels, self.probabilities, strict=True):
            writer.writerow(
                [spreadsheet_safe(name), spreadsheet_safe(label), f"{probs.max():.4f}", *(f"{p:.4f}" for p in probs)]
            )
        return buffer.getvalue()


def adapt_folders(
    run: str | os.PathLike,
    support: str | os.PathLike,
    query: str | os.PathLike,
    invert: str = "auto",
    device: str = "cpu",
) -> Predictions:
    """Adapt `run`'s model to SUPPORT/<class>/<image> and label every image under QUERY."""
    clf = FewShotClassifier.from_run(run, device=device, invert=invert)
    x, y, classes = read_support(support, clf.input_format, invert)
    clf.fit(x, np.asarray(classes, dtype=object)[y.numpy()])  # before reading the query: bad class counts fail fast
    queries, files = read_query(query, clf.input_format, invert)
    probabilities = clf.predict_proba(queries)
    classes = [str(c) for c in clf.fitted_classes]
    return Predictions(files, classes, [classes[i] for i in probabilities.argmax(-1)], probabilities)


def write_predictions(predictions: Predictions, out: str | os.PathLike) -> None:
    """Write the CSV atomically (a failure never leaves half a file), creating its folder if needed. A device,
    pipe or other special file is refused: the atomic rename would replace it with a regular file."""
    path = Path(out)
    if path.is_dir():
        raise DataError(f"--out {path} is a folder; give a file name such as {path / 'predictions.csv'}")
    if path.exists() and not path.is_file():
        raise DataError(f"--out {path} is not a regular file; give a file name (without --out the CSV is printed)")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, predictions.to_csv())
