"""Side by side: the config values that differ between runs, and their results, as text tables."""

from __future__ import annotations

from typing import Any

from .format import format_results, format_seconds, format_validation
from .reader import RunRecord

_MISSING = object()
UNKNOWN = "?"


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def differing(configs: list[dict[str, Any]]) -> list[str]:
    """The dotted keys whose values are not the same in every config (a key missing somewhere differs)."""
    flats = [flatten(c) for c in configs]
    keys = sorted({k for f in flats for k in f})
    return [k for k in keys if len({repr(f.get(k, _MISSING)) for f in flats}) > 1]


def table(header: list[str], rows: list[list[str]]) -> str:
    """A plain text table, columns padded to their widest cell."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(w) for cell, w in zip(header, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def runs_table(records: list[RunRecord]) -> str:
    """`polyskill runs`: one line per run; what could not be read shows as '?'."""
    header = ["run", "recipe", "algorithm", "data", "status", "best val", "test (95% CI)", "wall time"]
    rows = [
        [
            r.name,
            r.recipe or UNKNOWN,
            r.algorithm or UNKNOWN,
            r.dataset or UNKNOWN,
            r.status,
            format_validation(r.validation),
            format_results(r.test),
            format_seconds(r.wall_seconds),
        ]
        for r in records
    ]
    return table(header, rows)


def _value(value: Any, width: int = 40) -> str:
    """A config value in a cell, cut to `width` characters."""
    if value is _MISSING:
        return "(absent)"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def compare_table(records: list[RunRecord]) -> str:
    """`polyskill compare`: the configs that differ, then status, validation, test results and wall time."""
    flats = [flatten(r.config) for r in records]
    keys = [k for k in differing([r.config for r in records]) if k != "description"]
    rows = [[key, *(_value(f.get(key, _MISSING)) for f in flats)] for key in keys]
    if not keys:
        rows.append(["(configs)", *["identical"] * len(records)])
    rows.append(["status", *(r.status for r in records)])
    rows.append(["best val", *(format_validation(r.validation) for r in records)])
    results = [{f"test {result.label}": result.formatted() for result in r.test} for r in records]
    labels = list(dict.fromkeys(label for res in results for label in res))
    rows += [[label, *(res.get(label, "-") for res in results)] for label in labels]
    if not labels:
        rows.append(["test", *["-"] * len(records)])
    rows.append(["wall time", *(format_seconds(r.wall_seconds) for r in records)])
    return table(["", *(r.name for r in records)], rows)


def problem_lines(records: list[RunRecord]) -> list[str]:
    """One line per thing that could not be read, naming its run."""
    return [f"{r.name}: {problem}" for r in records for problem in r.problems]


__all__ = ["compare_table", "differing", "flatten", "problem_lines", "runs_table", "table"]
