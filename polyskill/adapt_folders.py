"""`polyskill adapt`: label a user's examples (a folder of images, a file of texts) from labelled ones (a folder of
class folders; a CSV, JSONL or folder of <class>.txt files), with a trained run."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classifier import FewShotClassifier
from .errors import DataError
from .meta.contract import is_transductive
from .train.checkpoint import write_text

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: one that would start a formula (=, +, -, @, tab, CR; a file or class
    name comes from the user's folders) gets a leading single quote, as OWASP advises against CSV injection."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@dataclass
class Predictions:
    """The label and class probabilities of every query example (an image's path relative to the query folder, or
    a text), named in the first column by `column`. `transductive`: each prediction used every query example (the
    learner transduces: TIM, PT-MAP, MAML's batch norm over the query set, ...), so adding or removing queries can
    change the others' labels."""

    examples: list[str]
    classes: list[str]
    labels: list[str]
    probabilities: np.ndarray
    column: str = "file"
    transductive: bool = False

    def to_csv(self) -> str:
        """file (or text), label, confidence, then one probability column per class; cells that would start a
        spreadsheet formula are quoted (see `spreadsheet_safe`)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([self.column, "label", "confidence", *(spreadsheet_safe(f"p_{c}") for c in self.classes)])
        for name, label, probs in zip(self.examples, self.labels, self.probabilities, strict=True):
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
    truncate: bool = False,
) -> Predictions:
    """Adapt `run`'s model to the labelled SUPPORT examples and label every QUERY example: for an image run
    SUPPORT/<class>/<image> and every image under QUERY; for a text run a CSV / JSONL of text,label (or a folder
    of <class>.txt) and a .txt of one text a line (or a CSV / JSONL with a text column)."""
    clf = FewShotClassifier.from_run(run, device=device, invert=invert, truncate=truncate)
    x, labels = clf.inputs.read_support(support)
    clf.fit(x, labels)  # before reading the query: bad class counts fail fast
    queries, names = clf.inputs.read_query(query)
    probabilities = clf.predict_proba(queries)
    classes = [str(c) for c in clf.fitted_classes]
    labelled = [classes[i] for i in probabilities.argmax(-1)]
    return Predictions(names, classes, labelled, probabilities, clf.inputs.column, is_transductive(clf.algo))


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
