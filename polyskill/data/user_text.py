"""A user's own text: labelled examples (a CSV or JSONL of text and label, or a folder of one `<class>.txt` per
class) and texts to label (a .txt, .csv or .jsonl file).

Every problem of a file is gathered and reported in one DataError that names the file and the lines of the first
few problems, so a user fixes them in one pass. Texts lose their surrounding whitespace and nothing else (casing
is the tokenizer's business).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from ..errors import DataError
from .text_classes import TextClasses

MAX_BYTES = 100 * 2**20
SHOWN = 10
LABELLED_FORMATS = "a .csv or .jsonl file with 'text' and 'label', or a folder of one <class>.txt file per class"
QUERY_FORMATS = "a .txt file (one text a line), or a .csv or .jsonl file with a 'text' column"


def _refuse(path: Path, problems: list[str]) -> DataError:
    """One error naming the file, the number of problems and the first few."""
    more = f"; ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return DataError(f"{path}: {len(problems)} problem(s): {'; '.join(problems[:SHOWN])}{more}")


class Unreadable(Exception):
    """Why a file's text cannot be used (the caller names the file)."""


def _decoded(path: Path) -> str:
    """The UTF-8 text of a file (a BOM is dropped), or Unreadable: missing, a folder, over 100 MB, binary, not
    UTF-8, or empty."""
    if not path.exists():
        raise Unreadable("does not exist")
    if path.is_dir():
        raise Unreadable("is a folder, not a file")
    if not path.is_file():
        raise Unreadable("is not a regular file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise Unreadable(f"is {size / 2**20:.0f} MB; text files over {MAX_BYTES // 2**20} MB are refused")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot be read: {exc.strerror or exc}") from None
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data[:nul].count(b"\n") + 1
        raise Unreadable(f"holds binary data (a NUL byte at byte {nul}, line {line}), not UTF-8 text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise Unreadable(
            f"is not UTF-8 text: byte {exc.start} (line {line}) is 0x{data[exc.start]:02x}; save it as UTF-8"
        ) from None
    if not text.strip():
        raise Unreadable("is empty")
    return text


def read_text_file(path: Path) -> str:
    """The UTF-8 text of a file; missing, a folder, over 100 MB, binary, not UTF-8 or empty is one DataError."""
    try:
        return _decoded(path)
    except Unreadable as exc:
        raise DataError(f"{path} {exc}") from None


def _columns(path: Path, header: list[str], wanted: tuple[str, ...]) -> dict[str, int]:
    """Index of each wanted column (case and surrounding spaces ignored); a missing one names the columns found."""
    found = {name.strip().lower(): i for i, name in reversed(list(enumerate(header)))}
    missing = [name for name in wanted if name not in found]
    if missing:
        shown = ", ".join(repr(h) for h in header[:20]) or "none"
        raise DataError(
            f"{path}: no {' or '.join(repr(m) for m in missing)} column; the first row must be a header naming the "
            f"columns, and it has: {shown}"
        )
    return {name: found[name] for name in wanted}


def _csv_rows(path: Path, wanted: tuple[str, ...]) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """([(line, values of the wanted columns)], problems) of a CSV file with a header row."""
    reader = csv.reader(io.StringIO(read_text_file(path), newline=""))
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: not a readable CSV header ({exc})") from None
    if header is None:
        raise DataError(f"{path} has no header row")
    index = _columns(path, header, wanted)
    rows, problems, start = [], [], reader.line_num + 1
    while True:
        try:
            row = next(reader, None)
        except csv.Error as exc:
            problems.append(f"line {start}: not readable as CSV ({exc}); the rest of the file was not read")
            break
        if row is None:
            break
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(index.values()):
            problems.append(f"line {line}: {len(row)} field(s), the header has {len(header)}")
            continue
        rows.append((line, [row[index[name]] for name in wanted]))
    return rows, problems


def _jsonl_rows(path: Path, wanted: tuple[str, ...]) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """([(line, values of the wanted keys as strings)], problems) of a file of one JSON object a line."""
    rows, problems = [], []
    for line, raw in enumerate(read_text_file(path).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(f"line {line}: not JSON ({exc.msg})")
            continue
        if not isinstance(item, dict):
            problems.append(f"line {line}: a JSON {type(item).__name__}, expected an object with {', '.join(wanted)}")
            continue
        missing = [key for key in wanted if key not in item]
        if missing:
            problems.append(f"line {line}: no {' or '.join(repr(k) for k in missing)} key")
            continue
        values, bad = [], []
        for key in wanted:
            value = item[key]
            numeric = isinstance(value, int | float) and not isinstance(value, bool) and key != "text"
            if isinstance(value, str) or numeric:
                values.append(str(value))
            else:
                kind = "a string" if key == "text" else "a string or a number"
                bad.append(f"line {line}: {key!r} is {json.dumps(value)[:40]}, expected {kind}")
        problems += bad
        if not bad:
            rows.append((line, values))
    return rows, problems


def _rows(path: Path, wanted: tuple[str, ...], formats: str) -> list[tuple[int, list[str]]]:
    """The stripped values of the wanted columns of a .csv or .jsonl file, one DataError for every problem."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise DataError(f"{path}: expected {formats}")
    rows, problems = (_csv_rows if suffix == ".csv" else _jsonl_rows)(path, wanted)
    cleaned = []
    for line, values in rows:
        values = [v.strip() for v in values]
        empty = [name for name, v in zip(wanted, values, strict=True) if not v]
        if empty:
            problems.append(f"line {line}: empty {' and '.join(empty)}")
        else:
            cleaned.append((line, values))
    if problems:
        raise _refuse(path, problems)
    if not cleaned:
        raise DataError(f"{path} has a header but no examples")
    return cleaned


def _read_class_folder(folder: Path) -> tuple[list[list[str]], list[str]]:
    """FOLDER/<class>.txt, one example a line: (texts, class names sorted); every bad file in one DataError."""
    entries = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
    files = [p for p in entries if p.suffix.lower() == ".txt" and p.is_file()]
    problems = [f"{p.name} (not a <class>.txt file)" for p in entries if p not in files]
    if not files:
        raise DataError(f"{folder} holds no .txt files: put each class's examples, one a line, in {folder}/<class>.txt")
    texts, names = [], []
    for path in sorted(files, key=lambda p: p.stem):
        try:
            lines = [line.strip() for line in _decoded(path).splitlines()]
        except Unreadable as exc:
            problems.append(f"{path.name} ({exc})")
            continue
        if path.stem in names:
            problems.append(f"{path.name} (a second file for class {path.stem!r})")
            continue
        texts.append([line for line in lines if line])
        names.append(path.stem)
    if problems:
        raise _refuse(folder, problems)
    return texts, names


def _at_least_two(path: Path, classes: TextClasses) -> TextClasses:
    if classes.num_classes < 2:
        found = classes.names[0] if classes.names else "none"
        raise DataError(f"{path}: labelled data needs at least 2 classes, found {classes.num_classes} ({found})")
    return classes


def read_labelled_text(path: str | os.PathLike) -> TextClasses:
    """Labelled examples from a .csv (header with `text` and `label`), a .jsonl (objects with `text` and `label`)
    or a folder of `<class>.txt` files (one example a line); classes in sorted name order."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; expected {LABELLED_FORMATS}")
    if path.is_dir():
        texts, names = _read_class_folder(path)
        return _at_least_two(path, TextClasses(texts, names))
    groups: dict[str, list[str]] = {}
    for _, (text, label) in _rows(path, ("text", "label"), LABELLED_FORMATS):
        groups.setdefault(label, []).append(text)
    names = sorted(groups)
    return _at_least_two(path, TextClasses([groups[n] for n in names], names))


def read_query_text(path: str | os.PathLike) -> list[str]:
    """Texts to label from a .txt file (one a line, blank lines skipped) or a .csv / .jsonl with a `text` column
    (any label column is ignored)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; expected {QUERY_FORMATS}")
    if path.suffix.lower() == ".txt" or not path.exists():
        return [line.strip() for line in read_text_file(path).splitlines() if line.strip()]
    return [values[0] for _, values in _rows(path, ("text",), QUERY_FORMATS)]
